//! Charts of a comparison, each written as PNG and SVG: comparison bars with 95% CIs, per
//! specialty bars, confusion-matrix heatmaps and a scatter of answer length against reference
//! length. Bars reuse [`medtune_train::plot::bar_chart`]; the heatmap and scatter are drawn here
//! with the same font registration.

use crate::analysis::word_count;
use crate::compare::{Comparison, Confusion};
use crate::error::Result;
use crate::run::Mode;
use crate::suite::Suite;
use medtune_train::plot::{bar_chart, ensure_font, Bar, Labels, PlotError};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

fn draw_err(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A chart drawable on any backend.
trait Chart {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        path: &Path,
    ) -> std::result::Result<(), PlotError>;
}

struct Heatmap<'a> {
    title: String,
    confusion: &'a Confusion,
}

impl Chart for Heatmap<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        path: &Path,
    ) -> std::result::Result<(), PlotError> {
        heatmap(root, path, &self.title, self.confusion)
    }
}

struct Scatter(Vec<(String, Vec<(f64, f64)>)>);

impl Chart for Scatter {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        path: &Path,
    ) -> std::result::Result<(), PlotError> {
        scatter(root, path, &self.0)
    }
}

/// Writes `<stem>.png` and `<stem>.svg`, through temporary files renamed at the end.
fn both<C: Chart>(
    stem: &Path,
    size: (u32, u32),
    chart: &C,
) -> std::result::Result<Vec<PathBuf>, PlotError> {
    ensure_font()?;
    let name = stem
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let png = stem.with_file_name(format!(".{name}.tmp.png"));
    let svg = stem.with_file_name(format!(".{name}.tmp.svg"));
    chart.draw(&BitMapBackend::new(&png, size).into_drawing_area(), &png)?;
    chart.draw(&SVGBackend::new(&svg, size).into_drawing_area(), &svg)?;
    let mut out = Vec::new();
    for (tmp, ext) in [(png, "png"), (svg, "svg")] {
        let dest = stem.with_extension(ext);
        std::fs::rename(&tmp, &dest).map_err(|source| PlotError::Io {
            path: dest.clone(),
            source,
        })?;
        out.push(dest);
    }
    Ok(out)
}

fn heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    path: &Path,
    title: &str,
    c: &Confusion,
) -> std::result::Result<(), PlotError> {
    let k = c.labels.len();
    let max = c.matrix.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(80)
        // A segmented `0..m` range has m + 1 segments, so `0..k - 1` gives one per label.
        .build_cartesian_2d(
            (0..k.saturating_sub(1)).into_segmented(),
            (0..k.saturating_sub(1)).into_segmented(),
        )
        .map_err(|e| draw_err(path, e))?;
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => c.labels.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(k)
        .y_labels(k)
        .x_label_formatter(&label)
        .y_label_formatter(&|v| match v {
            // Rows run top to bottom: gold label i is drawn at y = k - 1 - i.
            SegmentValue::CenterOf(i) if *i < k => c.labels[k - 1 - *i].clone(),
            _ => String::new(),
        })
        .x_desc("predicted")
        .y_desc("gold")
        .draw()
        .map_err(|e| draw_err(path, e))?;
    for (g, row) in c.matrix.iter().enumerate() {
        for (p, &n) in row.iter().enumerate() {
            let shade = n as f64 / max;
            let y = k - 1 - g;
            let color = RGBColor(
                (255.0 - 224.0 * shade) as u8,
                (255.0 - 136.0 * shade) as u8,
                (255.0 - 75.0 * shade) as u8,
            );
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                    ],
                    color.filled(),
                )))
                .map_err(|e| draw_err(path, e))?;
            let text_color = if shade > 0.6 { WHITE } else { BLACK };
            chart
                .draw_series(std::iter::once(Text::new(
                    n.to_string(),
                    (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                    ("sans-serif", 16).into_font().color(&text_color),
                )))
                .map_err(|e| draw_err(path, e))?;
        }
    }
    root.present().map_err(|e| draw_err(path, e))
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

fn scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    path: &Path,
    series: &[(String, Vec<(f64, f64)>)],
) -> std::result::Result<(), PlotError> {
    let max = series
        .iter()
        .flat_map(|s| s.1.iter())
        .map(|p| p.0.max(p.1))
        .fold(1.0f64, f64::max)
        * 1.05;
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Answer length vs reference length (words)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max, 0.0..max)
        .map_err(|e| draw_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("reference words")
        .y_desc("answer words")
        .draw()
        .map_err(|e| draw_err(path, e))?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (max, max)],
            BLACK.mix(0.4),
        ))
        .map_err(|e| draw_err(path, e))?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(
                pts.iter()
                    .map(|&p| Circle::new(p, 3, color.mix(0.6).filled())),
            )
            .map_err(|e| draw_err(path, e))?
            .label(name.clone())
            .legend(move |(x, y)| Circle::new((x + 6, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw_err(path, e))?;
    root.present().map_err(|e| draw_err(path, e))
}

fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes every chart of `cmp` into `dir`; returns the files written.
pub fn write_plots(cmp: &Comparison, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    // Comparison bars: each suite/mode's primary metric, one bar per target.
    let mut stages: Vec<(Suite, Mode, String)> = cmp
        .specialties
        .iter()
        .map(|s| (s.suite, s.mode, s.metric.clone()))
        .collect();
    stages.dedup();
    let mut bars = Vec::new();
    for (suite, mode, metric) in &stages {
        for t in &cmp.targets {
            if let Some(r) = cmp.metric(t, *suite, *mode, metric) {
                bars.push(Bar {
                    label: format!("{suite}/{} {t}", &mode.name()[..3]),
                    value: r.value.value,
                    ci: Some((r.value.low, r.value.high)),
                });
            }
        }
    }
    let choice_bars: Vec<Bar> = bars
        .iter()
        .filter(|b| !b.label.starts_with("medquad"))
        .cloned()
        .collect();
    if !choice_bars.is_empty() {
        files.extend(bar_chart(
            &dir.join("comparison_accuracy"),
            &Labels {
                title: "Accuracy by suite (95% bootstrap CI)",
                x: "suite/mode target",
                y: "accuracy",
            },
            &choice_bars,
        )?);
    }
    // Per specialty, one chart per suite/mode.
    for (suite, mode, metric) in &stages {
        let bars: Vec<Bar> = cmp
            .specialties
            .iter()
            .filter(|s| s.suite == *suite && s.mode == *mode)
            .map(|s| Bar {
                label: if cmp.targets.len() > 1 {
                    format!("{} {}", s.specialty, s.target)
                } else {
                    s.specialty.clone()
                },
                value: s.value.value,
                ci: Some((s.value.low, s.value.high)),
            })
            .collect();
        if bars.len() > 1 {
            let title = format!("{suite} ({}) {metric} by specialty", mode.name());
            files.extend(bar_chart(
                &dir.join(format!(
                    "specialty_{}_{}",
                    file_part(suite.name()),
                    mode.name()
                )),
                &Labels {
                    title: &title,
                    x: "specialty",
                    y: metric,
                },
                &bars,
            )?);
        }
    }
    for c in &cmp.confusions {
        let title = format!("{} {} ({}): confusion", c.target, c.suite, c.mode.name());
        let stem = dir.join(format!(
            "confusion_{}_{}_{}",
            file_part(&c.target),
            file_part(c.suite.name()),
            c.mode.name()
        ));
        let side = 220 + 70 * c.labels.len() as u32;
        let chart = Heatmap {
            title,
            confusion: c,
        };
        files.extend(both(&stem, (side.max(420), side.max(420)), &chart)?);
    }
    let series: Vec<(String, Vec<(f64, f64)>)> = cmp
        .targets
        .iter()
        .map(|t| {
            let pts = cmp
                .predictions
                .iter()
                .filter(|p| &p.target == t && p.mode == Mode::Generate && !p.suite.is_choice())
                .map(|p| {
                    (
                        word_count(&p.reference) as f64,
                        word_count(&p.output) as f64,
                    )
                })
                .collect();
            (t.clone(), pts)
        })
        .filter(|(_, pts): &(String, Vec<(f64, f64)>)| !pts.is_empty())
        .collect();
    if !series.is_empty() {
        files.extend(both(
            &dir.join("answer_length"),
            (720, 640),
            &Scatter(series),
        )?);
    }
    Ok(files)
}
