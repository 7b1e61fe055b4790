-- The 14 high-level features of PHYSICS.md, in its order, per selected event.

with new_selected_events as (

    select * from {{ ref('selected_events') }}
    {{ only_new_ingests() }}

)

select
    cast(aggregate(jets, cast(0 as double), (total, j) -> total + j.PT) as float) as HT,
    cast(MET as float) as MET,
    cast(PhiMET as float) as PhiMET,
    -- the reference stored MT squared
    cast(
        sqrt(2 * MET * selected_lepton.PT * (1 - cos(selected_lepton.Phi - PhiMET))) as float
    ) as MT,
    size(jets) as nJets,
    size(filter(jets, j -> j.BTag > 0)) as nBJets,
    cast(selected_lepton.PT as float) as LepPt,
    cast(selected_lepton.Eta as float) as LepEta,
    cast(selected_lepton.Phi as float) as LepPhi,
    cast(selected_lepton.ChPFIso as float) as LepIsoCh,
    cast(selected_lepton.GammaPFIso as float) as LepIsoGamma,
    cast(selected_lepton.NeuPFIso as float) as LepIsoNeu,
    selected_lepton.Charge as LepCharge,
    selected_lepton.IsEle as LepIsEle,
    label,
    sample,
    source_file,
    content_hash,
    entry,
    {{ split_of('content_hash', 'entry') }} as split,
    ingest_id
from new_selected_events
