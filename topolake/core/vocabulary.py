"""The closed sets of names the stages share, each defined once (PHYSICS.md's order)."""

#: sample <-> class label. The class order (by label) is the order of every score vector.
SAMPLE_LABELS = {"qcd": 0, "ttbar": 1, "wjets": 2}
CLASSES = tuple(sorted(SAMPLE_LABELS, key=SAMPLE_LABELS.get))

#: The lakehouse layers, in build order.
LAYERS = ("bronze", "silver", "gold")
#: The layers dbt builds (bronze is landed by ingestion).
DBT_LAYERS = ("silver", "gold")

#: The neural classifiers (Keras, trained by an engine of ENGINES) and the inputs each reads,
#: in the order it takes them: the reference's three and a particle flow network ("pfn": a
#: permutation-invariant sum over the particles, with the HLF beside it).
MODEL_INPUTS = {
    "hlf": ("hlf",),
    "particles": ("particles",),
    "inclusive": ("particles", "hlf"),
    "pfn": ("particles", "hlf"),
}
#: The reference's classical baselines on the HLF: Spark ML estimators, trained on Spark.
BASELINES = ("rf", "xgboost")
#: Every classifier `topolake train --model` takes.
MODELS = (*MODEL_INPUTS, *BASELINES)

#: The training engines: TensorFlow (one process or multi-worker on Spark) and BigDL.
ENGINES = ("tf", "bigdl")

#: The gold feature contract: the 14 columns of gold.hlf_features and the 19 fields of each
#: gold.particle_sequences particle.
HLF_FEATURES = (
    "HT", "MET", "PhiMET", "MT", "nJets", "nBJets", "LepPt", "LepEta", "LepPhi",
    "LepIsoCh", "LepIsoGamma", "LepIsoNeu", "LepCharge", "LepIsEle",
)  # fmt: skip
PARTICLE_FEATURES = (
    "Energy", "Px", "Py", "Pz", "Pt", "Eta", "Phi", "vtxX", "vtxY", "vtxZ",
    "ChPFIso", "GammaPFIso", "NeuPFIso", "isChHad", "isNeuHad", "isGamma", "isEle", "isMu",
    "Charge",
)  # fmt: skip
