{#- Overrides dbt-spark's spark__get_merge_sql (dbt's dispatch prefers the root project's macro
    of that name to the adapter's), because a build with nothing new must change nothing, not
    even commit an empty snapshot (Iceberg's MERGE with an empty source still writes one):
    - incremental models merge only when the temp view of new rows holds a row (column pruning
      leaves just the incremental filter to evaluate);
    - models with `merge_full_set=true` compute their whole content each run (training_set):
      they merge only when it differs from the table, and rows no longer produced are deleted.
    topolake's models always merge on a unique key and update whole rows. -#}
{% macro spark__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) %}
    {%- set full_set = config.get('merge_full_set', false) -%}
    {%- if full_set -%}
        {%- set changes -%}
            ((select * from {{ source }} except select * from {{ target }})
             union all
             (select * from {{ target }} except select * from {{ source }})) as changes
        {%- endset -%}
    {%- else -%}
        {%- set changes = source -%}
    {%- endif -%}
    {%- set probe = run_query('select 1 from ' ~ changes ~ ' limit 1') -%}
    {%- if execute and probe | length == 0 -%}
        select 'nothing new for {{ target }}' as nothing_to_merge
    {%- else -%}
        {%- set keys = [unique_key] if unique_key is string else unique_key -%}
        merge into {{ target }} as target_rows
        using {{ source }} as new_rows
        on {% for key in keys -%}
            new_rows.{{ key }} = target_rows.{{ key }}{{ " and " if not loop.last }}
        {%- endfor %}
        when matched then update set *
        when not matched then insert *
        {%- if full_set %}
        when not matched by source then delete
        {%- endif %}
    {%- endif -%}
{% endmacro %}
