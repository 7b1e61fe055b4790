{#- 80/20 by a hash of the event identity: adding events never moves an old one. -#}
{% macro split_of(content_hash, entry) -%}
    case when pmod(xxhash64({{ content_hash }}, {{ entry }}), 100) < {{ var('train_percent') }}
         then 'train' else 'test' end
{%- endmacro %}
