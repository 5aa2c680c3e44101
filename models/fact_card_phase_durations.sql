-- kind: fact
-- grain: [card_id, entered_at]
-- owner: ops-data
-- tags: [pipefy]
-- description: Each phase a Pipefy card went through and how long it stayed (change-state table).
SELECT card_id, to_state AS phase, from_state AS previous_phase, entered_at, left_at,
       duration_ms / 60000.0 AS minutes
FROM card_phases
