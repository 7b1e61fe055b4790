-- One row per event that passes the trigger selection, every pre-selected particle with its
-- three isolation values. The selection itself is lepton_selection's: only its passing events
-- are read here, and joined to their pre-selected objects.
--
-- Particle isolation is a cone sum over the event's other particles. It is computed on rows:
-- every particle is exploded against every particle of its event and the in-cone pairs are
-- summed, which Spark compiles to Java. The same sums as nested higher-order functions were
-- 25 % slower, and a self-join on eta-phi cells 12 times slower (README, Performance).

with new_decisions as (

    select * from {{ ref('lepton_selection') }}
    {{ only_new_ingests() }}

),

new_objects as (

    select * from {{ ref('preselected_objects') }}
    {{ only_new_ingests() }}

),

passing as (

    select
        new_decisions.sample,
        new_decisions.label,
        new_decisions.source_file,
        new_decisions.content_hash,
        new_decisions.entry,
        new_decisions.ingest_id,
        new_decisions.selected_lepton,
        new_objects.tracks,
        new_objects.photons,
        new_objects.neutral_hadrons,
        new_objects.jets,
        new_objects.MET,
        new_objects.PhiMET
    from new_decisions
    inner join new_objects
        on
            new_decisions.content_hash = new_objects.content_hash
            and new_decisions.entry = new_objects.entry
    where new_decisions.passes_selection

),

-- tracks, then photons, then neutral hadrons: a particle's position in this array is its key
particles_of_event as (

    select
        content_hash,
        entry,
        concat(
            transform(tracks, t -> struct(t.PT as pt, t.Eta as Eta, t.Phi as Phi, 0 as kind)),
            transform(photons, p -> struct(p.ET as pt, p.Eta as Eta, p.Phi as Phi, 1 as kind)),
            transform(
                neutral_hadrons,
                n -> struct(n.ET as pt, n.Eta as Eta, n.Phi as Phi, 2 as kind)
            )
        ) as particles
    from passing

),

in_cone_pairs as (

    select
        content_hash,
        entry,
        position,
        neighbour.kind,
        neighbour.pt
    from particles_of_event
        lateral view posexplode(particles) candidates as position, candidate
        lateral view explode(particles) neighbours as neighbour
    where {{ in_cone('candidate.Eta', 'candidate.Phi', 'neighbour.Eta', 'neighbour.Phi') }}

),

cone_sums_per_particle as (

    select
        content_hash,
        entry,
        position,
        sum(if(kind = 0, pt, 0d)) as track_sum,
        sum(if(kind = 1, pt, 0d)) as photon_sum,
        sum(if(kind = 2, pt, 0d)) as neutral_hadron_sum
    from in_cone_pairs
    group by content_hash, entry, position

),

cone_sums_per_event as (

    select
        content_hash,
        entry,
        array_sort(collect_list(struct(position, track_sum, photon_sum, neutral_hadron_sum)))
            as cone_sums
    from cone_sums_per_particle
    group by content_hash, entry

),

with_cone_sums as (

    select
        passing.*,
        -- an event without pre-selected particles has no pairs
        coalesce(cone_sums_per_event.cone_sums, array()) as cone_sums
    from passing
    left join cone_sums_per_event
        on
            passing.content_hash = cone_sums_per_event.content_hash
            and passing.entry = cone_sums_per_event.entry

)

select
    sample,
    label,
    source_file,
    content_hash,
    entry,
    ingest_id,
    selected_lepton,
    zip_with(tracks, slice(cone_sums, 1, size(tracks)), (c, s) -> struct(
        c.PT as PT, c.Eta as Eta, c.Phi as Phi, c.Charge as Charge, c.X as X, c.Y as Y, c.Z as Z,
        {{ isolation_from_sums('s', 'c.PT', true) }}
    )) as tracks,
    zip_with(photons, slice(cone_sums, size(tracks) + 1, size(photons)), (c, s) -> struct(
        c.ET as ET, c.Eta as Eta, c.Phi as Phi,
        {{ isolation_from_sums('s', 'c.ET', false) }}
    )) as photons,
    zip_with(
        neutral_hadrons,
        slice(cone_sums, size(tracks) + size(photons) + 1, size(neutral_hadrons)),
        (c, s) -> struct(
            c.ET as ET, c.Eta as Eta, c.Phi as Phi,
            {{ isolation_from_sums('s', 'c.ET', false) }}
        )
    ) as neutral_hadrons,
    jets,
    MET,
    PhiMET
from with_cone_sums
