-- The selected lepton and up to 450 tracks, 150 photons and 200 neutral hadrons per selected
-- event, 19 float32 features each, sorted by deltaR from the lepton (largest first). Only the
-- real particles are stored; padding to 801 rows is the input pipeline's job.

with new_selected_events as (

    select * from {{ ref('selected_events') }}
    {{ only_new_ingests() }}

),

unsorted_particles as (

    select
        label,
        sample,
        source_file,
        content_hash,
        entry,
        ingest_id,
        concat(
            array({{ sequence_row('selected_lepton', 'PT', ['0', '0', '0'],
                    ['0', '0', '0', 'selected_lepton.IsEle', '1 - selected_lepton.IsEle'],
                    'selected_lepton.Charge') }}),
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
                t -> {{ sequence_row('t', 'PT', ['t.X', 't.Y', 't.Z'],
                        ['1', '0', '0', '0', '0'], 't.Charge') }}
            ),
            transform(
                slice(photons, 1, {{ var('max_photons') }}),
                p -> {{ sequence_row('p', 'ET', ['0', '0', '0'], ['0', '0', '1', '0', '0'], '0') }}
            ),
            transform(
                slice(neutral_hadrons, 1, {{ var('max_neutral_hadrons') }}),
                n -> {{ sequence_row('n', 'ET', ['0', '0', '0'], ['0', '1', '0', '0', '0'], '0') }}
            )
        ) as particles
    from new_selected_events

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
