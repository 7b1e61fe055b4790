{#- Rows of events not yet in this incremental model (all of them on a full refresh). -#}
{% macro only_new_ingests() -%}
    {% if is_incremental() %}
    where ingest_id not in (select distinct ingest_id from {{ this }})
    {% endif %}
{%- endmacro %}
