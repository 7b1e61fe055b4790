{#- Layers are schemas of the `lake` catalog: silver and gold, not <target>_silver. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name if custom_schema_name is not none else target.schema }}
{%- endmacro %}
