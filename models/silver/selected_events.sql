-- One row per event that passes the trigger selection: its selected lepton, jets and missing
-- ET, what the high-level features need. The selection itself is lepton_selection's: only its
-- passing events are read here, and joined to their pre-selected objects. Particles are not
-- stored in silver: gold.particle_sequences, their only reader, takes them from the
-- pre-selected objects and computes their isolation for the particles it keeps.

with new_decisions as (

    select * from {{ ref('lepton_selection') }}
    {{ only_new_ingests() }}

),

new_objects as (

    select * from {{ ref('preselected_objects') }}
    {{ only_new_ingests() }}

)

select
    new_decisions.sample,
    new_decisions.label,
    new_decisions.source_file,
    new_decisions.content_hash,
    new_decisions.entry,
    new_decisions.ingest_id,
    new_decisions.selected_lepton,
    new_objects.jets,
    new_objects.MET,
    new_objects.PhiMET
from new_decisions
inner join new_objects
    on
        new_decisions.content_hash = new_objects.content_hash
        and new_decisions.entry = new_objects.entry
where new_decisions.passes_selection
