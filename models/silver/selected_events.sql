-- One row per event that passes the trigger selection, every pre-selected particle with its
-- three isolation values.

with new_events as (

    select * from {{ ref('preselected_objects') }}
    {{ only_new_ingests() }}

),

with_lepton as (

    select
        *,
        {{ selected_lepton(isolated_candidates('lepton_candidates')) }} as selected_lepton
    from new_events

),

passing as (

    select * from with_lepton where selected_lepton is not null

)

select
    sample,
    label,
    source_file,
    entry,
    ingest_id,
    selected_lepton,
    transform(tracks, c -> struct(
        c.PT as PT, c.Eta as Eta, c.Phi as Phi, c.Charge as Charge, c.X as X, c.Y as Y, c.Z as Z,
        {{ isolation_fields('c', 'PT', true) }}
    )) as tracks,
    transform(photons, c -> struct(
        c.ET as ET, c.Eta as Eta, c.Phi as Phi,
        {{ isolation_fields('c', 'ET', false) }}
    )) as photons,
    transform(neutral_hadrons, c -> struct(
        c.ET as ET, c.Eta as Eta, c.Phi as Phi,
        {{ isolation_fields('c', 'ET', false) }}
    )) as neutral_hadrons,
    jets,
    MET,
    PhiMET
from passing
