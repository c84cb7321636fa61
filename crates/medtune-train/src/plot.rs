//! Line and bar charts written as PNG and SVG (loss curves here; evaluation reuses them).
//!
//! Text is drawn with a system TrueType font (DejaVu Sans or Liberation Sans), registered once per
//! process; `scripts/setup.sh` installs Debian's `fonts-dejavu-core` when none is present.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Why a chart could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("no TrueType font found for chart labels (looked in {0}); install fonts-dejavu-core")]
    NoFont(String),
    #[error("chart {path}: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("chart {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("chart {0}: nothing to plot")]
    Empty(String),
}

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
];

/// Registers the system font once per process (needed before drawing any text).
pub fn ensure_font() -> Result<(), PlotError> {
    static FONT: OnceLock<bool> = OnceLock::new();
    let ok = *FONT.get_or_init(|| {
        for p in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(p) {
                // The font must live as long as the process: plotters keeps a reference.
                let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, leaked).is_ok() {
                    return true;
                }
            }
        }
        false
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::NoFont(FONT_PATHS.join(", ")))
    }
}

/// One named line of (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One bar with an optional 95% confidence interval `(low, high)`.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub ci: Option<(f64, f64)>,
}

/// Labels of a chart.
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Writes `<stem>.png` and `<stem>.svg` with one line per series; returns both paths.
pub fn line_chart(
    stem: &Path,
    labels: &Labels,
    series: &[Series],
) -> Result<Vec<PathBuf>, PlotError> {
    ensure_font()?;
    let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    if !series.iter().flat_map(|s| s.points.iter()).any(finite) {
        return Err(PlotError::Empty(stem.display().to_string()));
    }
    let png = tmp_path(stem, "png");
    draw_lines(
        &BitMapBackend::new(&png, (900, 560)).into_drawing_area(),
        &png,
        labels,
        series,
    )?;
    let svg = tmp_path(stem, "svg");
    draw_lines(
        &SVGBackend::new(&svg, (900, 560)).into_drawing_area(),
        &svg,
        labels,
        series,
    )?;
    finish(stem, &[png, svg])
}

/// Writes `<stem>.png` and `<stem>.svg`: vertical bars with 95% CI whiskers where given.
pub fn bar_chart(stem: &Path, labels: &Labels, bars: &[Bar]) -> Result<Vec<PathBuf>, PlotError> {
    ensure_font()?;
    if bars.is_empty() {
        return Err(PlotError::Empty(stem.display().to_string()));
    }
    let width = (160 + 90 * bars.len() as u32).max(600);
    let png = tmp_path(stem, "png");
    draw_bars(
        &BitMapBackend::new(&png, (width, 560)).into_drawing_area(),
        &png,
        labels,
        bars,
    )?;
    let svg = tmp_path(stem, "svg");
    draw_bars(
        &SVGBackend::new(&svg, (width, 560)).into_drawing_area(),
        &svg,
        labels,
        bars,
    )?;
    finish(stem, &[png, svg])
}

fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    path: &Path,
    labels: &Labels,
    series: &[Series],
) -> Result<(), PlotError> {
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (x0, x1) = bounds(pts.iter().map(|p| p.0));
    let (y0, y1) = bounds(pts.iter().map(|p| p.1));
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(labels.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| draw_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc(labels.x)
        .y_desc(labels.y)
        .draw()
        .map_err(|e| draw_err(path, e))?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let line: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(|e| draw_err(path, e))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw_err(path, e))?;
    root.present().map_err(|e| draw_err(path, e))
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    path: &Path,
    labels: &Labels,
    bars: &[Bar],
) -> Result<(), PlotError> {
    let top = bars
        .iter()
        .map(|b| b.ci.map_or(b.value, |c| c.1.max(b.value)))
        .fold(0.0f64, f64::max);
    let bottom = bars
        .iter()
        .map(|b| b.ci.map_or(b.value, |c| c.0.min(b.value)))
        .fold(0.0f64, f64::min);
    let span = (top - bottom).max(1e-9);
    let (y0, y1) = (bottom - 0.02 * span, top + 0.08 * span);
    let n = bars.len();
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(labels.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(60)
        .build_cartesian_2d((0..n).into_segmented(), y0..y1)
        .map_err(|e| draw_err(path, e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.label.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(labels.x)
        .y_desc(labels.y)
        .draw()
        .map_err(|e| draw_err(path, e))?;
    for (i, b) in bars.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0f64.max(y0)),
                    (SegmentValue::Exact(i + 1), b.value),
                ],
                color.mix(0.85).filled(),
            )))
            .map_err(|e| draw_err(path, e))?;
        if let Some((lo, hi)) = b.ci {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![
                        (SegmentValue::CenterOf(i), lo),
                        (SegmentValue::CenterOf(i), hi),
                    ],
                    BLACK.stroke_width(2),
                )))
                .map_err(|e| draw_err(path, e))?;
        }
    }
    root.present().map_err(|e| draw_err(path, e))
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if (hi - lo).abs() < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    }
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// `<dir>/.<name>.tmp.<ext>`: the extension must stay last, plotters picks the encoder from it.
fn tmp_path(stem: &Path, ext: &str) -> PathBuf {
    let name = stem
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    stem.with_file_name(format!(".{name}.tmp.{ext}"))
}

/// Renames each temporary file onto `<stem>.<ext>`.
fn finish(stem: &Path, tmps: &[PathBuf]) -> Result<Vec<PathBuf>, PlotError> {
    let mut out = Vec::new();
    for tmp in tmps {
        let ext = tmp
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = stem.with_extension(ext);
        std::fs::rename(tmp, &dest).map_err(|source| PlotError::Io {
            path: dest.clone(),
            source,
        })?;
        out.push(dest);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_and_svg_for_lines_and_bars() {
        let dir = tempfile::tempdir().unwrap();
        let labels = Labels {
            title: "loss",
            x: "step",
            y: "loss",
        };
        let s = Series {
            name: "train".into(),
            points: vec![(0.0, 2.0), (1.0, 1.5), (2.0, 1.2)],
        };
        let out = line_chart(&dir.path().join("loss"), &labels, &[s]).unwrap();
        assert_eq!(out.len(), 2);
        for p in &out {
            assert!(std::fs::metadata(p).unwrap().len() > 500, "{p:?} too small");
        }
        let svg = std::fs::read_to_string(dir.path().join("loss.svg")).unwrap();
        assert!(svg.contains("train"));
        let bars = [
            Bar {
                label: "base".into(),
                value: 0.4,
                ci: Some((0.3, 0.5)),
            },
            Bar {
                label: "tuned".into(),
                value: 0.6,
                ci: None,
            },
        ];
        let out = bar_chart(&dir.path().join("acc"), &labels, &bars).unwrap();
        assert!(out.iter().all(|p| p.exists()));
        assert!(!dir.path().join(".acc.tmp.png").exists());
    }

    #[test]
    fn empty_series_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let labels = Labels {
            title: "t",
            x: "x",
            y: "y",
        };
        assert!(matches!(
            line_chart(&dir.path().join("e"), &labels, &[]),
            Err(PlotError::Empty(_))
        ));
    }
}
