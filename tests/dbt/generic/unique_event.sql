{#- Events (source_file, entry) that appear more than once. -#}
{% test unique_event(model) %}
select source_file, entry, count(*) as copies
from {{ model }}
group by source_file, entry
having count(*) > 1
{% endtest %}
