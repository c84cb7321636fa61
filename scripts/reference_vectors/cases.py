"""Test sentences for the metric reference vectors (written for medtune)."""

# (id, references, hypothesis)
PAIRS = [
    ("basic", ["The patient was given 5 mg of morphine for pain."],
     "The patient received 5 mg morphine for the pain."),
    ("identical", ["Aspirin reduces the risk of heart attack."],
     "Aspirin reduces the risk of heart attack."),
    ("no_overlap", ["Insulin lowers blood glucose."], "Quarterly revenue grew sharply."),
    ("multi_ref", ["Hypertension is a major risk factor for stroke.",
                   "High blood pressure greatly raises the risk of a stroke.",
                   "Stroke risk rises with hypertension."],
     "High blood pressure is a big risk factor for strokes."),
    ("punct_numbers", ["Take 2.5 mg twice daily (morning & evening); max 10-20 mg/day."],
     "Take 2.5mg twice a day, morning and evening, up to 10-20 mg per day."),
    ("short_hyp", ["Metformin is the first-line drug for type 2 diabetes in most adults."],
     "Metformin first."),
    ("long_hyp", ["Rest."],
     "The patient should rest, drink fluids, and return if the fever persists beyond three days."),
    ("multiline", ["Chest pain may be cardiac.\nOrder an ECG and troponin.\nConsider aspirin."],
     "Order an ECG.\nChest pain could be cardiac and needs troponin.\n\nGive aspirin if no allergy."),
    ("stemming", ["The doctors were running multiple diagnostic tests on the infected wounds."],
     "A doctor runs several diagnostics testing an infection of the wound."),
    ("unicode", ["Le patient présente une fièvre à 39 °C — traitement: paracétamol."],
     "Patient présente fièvre 39 °C; traitement par paracétamol."),
    ("html_entities", ["Use &quot;ACE inhibitors&quot; &amp; monitor K+ &lt; 5.0"],
     "Use \"ACE inhibitors\" & monitor K+ < 5.0"),
    ("synonyms", ["The physician examined the sick child and prescribed medicine."],
     "The doctor checked the ill kid and ordered medication."),
    ("repeated_words", ["the the the cat sat on the mat"], "the the the the the the the"),
    ("empty_hyp", ["Drink plenty of water."], ""),
    ("case_only", ["BLOOD PRESSURE WAS NORMAL"], "blood pressure was normal"),
    ("reordered", ["fever cough and fatigue are common symptoms"],
     "common symptoms are fatigue cough and fever"),
    ("meteor_doc", ["It is a guide to action that ensures that the military will forever heed Party commands",
                    "It is the guiding principle which guarantees the military forces always being under the command of the Party",
                    "It is the practical guide for the army always to heed the directions of the party"],
     "It is a guide to action which ensures that the military always obeys the commands of the party"),
    ("meteor_stem_syn", ["The children were happily playing games in the big gardens."],
     "A child was gladly plays game inside the large garden."),
]

# Words for the Porter stemmer vectors: common suffix classes and edge cases.
STEM_WORDS = """
caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled sized
hopping tanned falling hissing fizzed failing filing happy sky skies dying lying tying news innings
relational conditional rational valenci hesitanci digitizer conformabli radicalli differentli vileli
analogousli vietnamization predication operator feudalism decisiveness hopefulness callousness
formaliti sensitiviti sensibiliti triplicate formative formalize electriciti electrical hopeful
goodness revival allowance inference airliner gyroscopic adjustable defensible irritant replacement
adjustment dependent adoption homologou communism activate angulariti homologous effective bowdlerize
probate rate cease controll roll generalizations oscillators a at is by yes ies ied dies cried
spied fly flies happily beautifully archaeology theology biology analogies proceed exceed succeed
succeeded exceeding proceeding skating syzygy rhythm crying buying ying y yy
hypertension cardiomyopathy antibiotics prescribed prescribing diagnoses diagnosed diagnostic
vaccination vaccinations symptomatic inflammatory nephrology intubated intubation tachycardia
meningitis ulcerative analgesics anaesthetized haematological
""".split()
