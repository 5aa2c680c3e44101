-- kind: aggregation
-- grain: [device_id, hour]
-- owner: iot-data
-- tags: [iot]
-- description: Readings per device and hour.
SELECT device_id, location_site AS site, date_trunc('hour', ts) AS hour, count(*) AS readings,
       avg(temperature) AS avg_temp_c, max(temp_f) AS max_temp_f
FROM iot_events
GROUP BY 1, 2, 3
