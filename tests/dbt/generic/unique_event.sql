{#- Events (content_hash, entry) that appear more than once. -#}
{% test unique_event(model) %}
select content_hash, entry, count(*) as copies
from {{ model }}
group by content_hash, entry
having count(*) > 1
{% endtest %}
