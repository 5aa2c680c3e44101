-- kind: aggregation
-- grain: [segment]
-- owner: sales-data
-- tags: [orders, finance]
-- description: Live orders and their revenue per customer segment.
SELECT coalesce(segment, 'unknown') AS segment, count(*) AS orders, sum(amount) AS revenue
FROM gold.fact_orders
GROUP BY 1
