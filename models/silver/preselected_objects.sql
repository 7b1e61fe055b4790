{{ config(materialized='ephemeral') }}

-- The objects PHYSICS.md pre-selects, per bronze event. Ephemeral: inlined into the silver
-- models, each of which keeps only the ingests it has not seen yet (only_new_ingests).

with bronze_events as (

    select * from {{ source('bronze', 'events') }}

),

preselected as (

    select
        sample,
        label,
        source_file,
        content_hash,
        entry,
        ingest_id,
        filter(EFlowTrack, t -> t.PT > {{ var('track_pt_min') }}) as tracks,
        filter(EFlowPhoton, p -> p.ET > {{ var('photon_et_min') }}) as photons,
        filter(EFlowNeutralHadron, n -> n.ET > {{ var('neutral_hadron_et_min') }})
            as neutral_hadrons,
        filter(Jet, j -> j.PT > {{ var('jet_pt_min') }} and abs(j.Eta) < {{ var('jet_eta_max') }})
            as jets,
        concat(
            transform(
                filter(Electron, e -> e.PT > {{ var('lepton_pt_min') }}),
                e -> struct(
                    e.PT as PT, e.Eta as Eta, e.Phi as Phi, e.Charge as Charge, 1 as IsEle
                )
            ),
            transform(
                filter(MuonTight, m -> m.PT > {{ var('lepton_pt_min') }}),
                m -> struct(
                    m.PT as PT, m.Eta as Eta, m.Phi as Phi, m.Charge as Charge, 0 as IsEle
                )
            )
        ) as lepton_candidates,
        MissingET[0].MET as MET,
        MissingET[0].Phi as PhiMET
    from bronze_events

)

select * from preselected
