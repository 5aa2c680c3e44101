-- kind: dimension
-- grain: [customer_id]
-- owner: crm-data
-- tags: [customers, pii_masked]
-- description: Every customer still at the source (PostgreSQL full load), email pseudonymised.
-- audits:
--   - unique: [customer_id]
--   - row_count: {min: 1}
-- columns:
--   customer_id: The CRM's customer id.
--   segment: retail, wholesale or enterprise.
--   email_domain: The domain of the customer's email (the address itself is a sha256).
SELECT customer_id, name, email_domain, segment, city, credit_limit, created_at, updated_at
FROM customers
