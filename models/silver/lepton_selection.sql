-- One row per bronze event: its isolated lepton candidates and the trigger decision.

with new_events as (

    select * from {{ ref('preselected_objects') }}
    {{ only_new_ingests() }}

),

candidates as (

    select
        sample,
        label,
        source_file,
        content_hash,
        entry,
        ingest_id,
        {{ isolated_candidates('lepton_candidates') }} as lepton_candidates
    from new_events

),

decisions as (

    select
        *,
        {{ selected_lepton('lepton_candidates') }} as selected_lepton
    from candidates

)

select
    *,
    selected_lepton is not null as passes_selection
from decisions
