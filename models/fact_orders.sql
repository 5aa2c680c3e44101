-- kind: fact
-- grain: [order_id]
-- owner: sales-data
-- tags: [orders]
-- description: One row per live order (MySQL CDC snapshot), with its customer's segment.
-- audits:
--   - unique: [order_id]
--   - not_null: [order_id, amount]
--   - accepted_values: {column: status, values: [pending, paid, shipped, delivered, cancelled]}
--   - relationships: {column: customer_id, to: gold.dim_customer}
-- columns:
--   order_id: The shop's order id.
--   segment: The customer's segment, or null when the customer is not in the CRM.
SELECT o.order_id, o.customer, c.customer_id, c.segment, o.status, o.amount, o.changed_at
FROM orders o
LEFT JOIN gold.dim_customer c ON o.customer = c.name
