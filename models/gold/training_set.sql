{{ config(merge_full_set=true) }}

-- Balanced by undersampling every class to the smallest one; the kept events of a class are
-- chosen by a hash of their identity, the split comes from hlf_features (a hash too).

with selected_features as (

    select
        label,
        sample,
        source_file,
        content_hash,
        entry,
        split,
        ingest_id
    from {{ ref('hlf_features') }}

),

class_sizes as (

    select
        label,
        count(*) as events
    from selected_features
    group by label

),

smallest_class as (

    select min(events) as events_per_class from class_sizes

),

ranked_within_class as (

    select
        *,
        row_number() over (
            partition by label
            order by xxhash64(content_hash, entry, 'balance'), content_hash, entry
        ) as class_rank
    from selected_features

)

select
    ranked_within_class.label,
    ranked_within_class.sample,
    ranked_within_class.source_file,
    ranked_within_class.content_hash,
    ranked_within_class.entry,
    ranked_within_class.split,
    ranked_within_class.ingest_id
from ranked_within_class
cross join smallest_class
where ranked_within_class.class_rank <= smallest_class.events_per_class
