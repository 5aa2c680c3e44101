-- kind: aggregation
-- grain: [device_id, hour]
-- owner: iot-data
-- tags: [iot]
-- description: Readings per device and hour. Each run recomputes the hours from the newest
--   one in the table minus the lookback, so late readings inside it are counted.
-- materialization: incremental_by_time
-- time_column: hour
-- lookback: 2h
-- audits:
--   - unique: [device_id, hour]
--   - not_null: [device_id, hour]
--   - sql: SELECT * FROM @this WHERE readings <= 0
--     name: every_hour_has_readings
SELECT device_id, location_site AS site, date_trunc('hour', ts) AS hour, count(*) AS readings,
       avg(temperature) AS avg_temp_c, max(temp_f) AS max_temp_f
FROM iot_events
WHERE ts >= @start AND ts < @end
GROUP BY 1, 2, 3
