-- The selected lepton and up to 450 tracks, 150 photons and 200 neutral hadrons per selected
-- event, 19 float32 features each, sorted by deltaR from the lepton (largest first). Only the
-- real particles are stored; padding to 801 rows is the input pipeline's job.
--
-- Built straight from the pre-selected objects of the events lepton_selection passes: silver
-- stores no particle arrays, since this model is the only reader of particles. Particle
-- isolation (a cone sum over all of the event's pre-selected particles) is computed only for
-- the particles kept here, on rows: each kept particle is exploded against every particle of
-- its event and the in-cone pairs are summed, which Spark compiles to Java. Each event's rows
-- are put in one partition first, so the two aggregations that follow shuffle nothing more.

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
        new_decisions.label,
        new_decisions.sample,
        new_decisions.source_file,
        new_decisions.content_hash,
        new_decisions.entry,
        new_decisions.ingest_id,
        new_decisions.selected_lepton,
        new_objects.tracks,
        new_objects.photons,
        new_objects.neutral_hadrons
    from new_decisions
    inner join new_objects
        on
            new_decisions.content_hash = new_objects.content_hash
            and new_decisions.entry = new_objects.entry
    where new_decisions.passes_selection
    -- each event's rows in one partition: the aggregations below then shuffle nothing
    distribute by content_hash, entry

),

-- kept: the particles of the sequence besides the lepton (kind 0 track, 1 photon, 2 neutral
-- hadron), in Delphes order within a kind; neighbours: every pre-selected particle
particles_of_event as (

    select
        content_hash,
        entry,
        selected_lepton,
        concat(
            transform(
                -- the lepton's own track is the lepton: leave it out
                slice(
                    filter(
                        tracks,
                        t -> {{ delta_r('selected_lepton.Eta', 'selected_lepton.Phi',
                                        't.Eta', 't.Phi') }} > {{ var('own_track_dr') }}
                    ),
                    1,
                    {{ var('max_tracks') }}
                ),
                t -> struct(
                    0 as kind, t.PT as PT, t.Eta as Eta, t.Phi as Phi, t.Charge as Charge,
                    t.X as X, t.Y as Y, t.Z as Z
                )
            ),
            transform(
                slice(photons, 1, {{ var('max_photons') }}),
                p -> struct(
                    1 as kind, p.ET as PT, p.Eta as Eta, p.Phi as Phi, 0 as Charge,
                    0f as X, 0f as Y, 0f as Z
                )
            ),
            transform(
                slice(neutral_hadrons, 1, {{ var('max_neutral_hadrons') }}),
                n -> struct(
                    2 as kind, n.ET as PT, n.Eta as Eta, n.Phi as Phi, 0 as Charge,
                    0f as X, 0f as Y, 0f as Z
                )
            )
        ) as kept,
        concat(
            transform(tracks, t -> struct(0 as kind, t.PT as PT, t.Eta as Eta, t.Phi as Phi)),
            transform(photons, p -> struct(1 as kind, p.ET as PT, p.Eta as Eta, p.Phi as Phi)),
            transform(
                neutral_hadrons, n -> struct(2 as kind, n.ET as PT, n.Eta as Eta, n.Phi as Phi)
            )
        ) as neighbours
    from passing

),

-- outer: for a plain explode Spark infers a size(...) > 0 filter and pushes it below the
-- arrays' definitions, computing them twice; the null rows of an empty array fail the cone test
in_cone_pairs as (

    select
        content_hash,
        entry,
        selected_lepton,
        position,
        particle,
        neighbour.kind as neighbour_kind,
        neighbour.PT as neighbour_pt
    from particles_of_event
        lateral view outer posexplode(kept) kept_particles as position, particle
        lateral view outer explode(neighbours) event_particles as neighbour
    where {{ in_cone('particle.Eta', 'particle.Phi', 'neighbour.Eta', 'neighbour.Phi') }}

),

cone_sums as (

    select
        content_hash,
        entry,
        selected_lepton,
        position,
        particle,
        sum(if(neighbour_kind = 0, neighbour_pt, 0d)) as track_sum,
        sum(if(neighbour_kind = 1, neighbour_pt, 0d)) as photon_sum,
        sum(if(neighbour_kind = 2, neighbour_pt, 0d)) as neutral_hadron_sum
    from in_cone_pairs
    group by content_hash, entry, selected_lepton, position, particle

),

isolated_particles as (

    select
        content_hash,
        entry,
        selected_lepton,
        struct(
            particle.kind,
            particle.PT,
            particle.Eta,
            particle.Phi,
            particle.Charge,
            particle.X,
            particle.Y,
            particle.Z,
            {{ isolation_ratios('track_sum', 'photon_sum', 'neutral_hadron_sum', 'particle.PT',
                                'if(particle.kind = 0, 1, 0)') }}
        ) as p
    from cone_sums

),

particle_rows as (

    select
        content_hash,
        entry,
        collect_list({{ sequence_row('p', 'PT', ['p.X', 'p.Y', 'p.Z'],
            ['p.kind = 0', 'p.kind = 2', 'p.kind = 1', '0', '0'], 'p.Charge') }}) as sequence_rows
    from isolated_particles
    group by content_hash, entry

),

unsorted_particles as (

    select
        passing.label,
        passing.sample,
        passing.source_file,
        passing.content_hash,
        passing.entry,
        passing.ingest_id,
        concat(
            array({{ sequence_row('selected_lepton', 'PT', ['0', '0', '0'],
                    ['0', '0', '0', 'selected_lepton.IsEle', '1 - selected_lepton.IsEle'],
                    'selected_lepton.Charge') }}),
            -- an event may keep no particle besides its lepton
            coalesce(particle_rows.sequence_rows, array())
        ) as particles
    from passing
    left join particle_rows
        on
            passing.content_hash = particle_rows.content_hash
            and passing.entry = particle_rows.entry

)

select
    label,
    sample,
    source_file,
    content_hash,
    entry,
    size(particles) as n_particles,
    transform(sort_array(particles), p -> struct(
        {%- for feature in sequence_features() %}
            p.{{ feature }} as {{ feature }}{{ "," if not loop.last }}
        {%- endfor %}
    )) as particles,
    ingest_id
from unsorted_particles
