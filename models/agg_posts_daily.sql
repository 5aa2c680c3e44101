-- kind: aggregation
-- grain: [author_id, day]
-- owner: social-data
-- tags: [x]
-- description: Posts and likes per author and day.
SELECT author_id, date_trunc('day', created_at) AS day, count(*) AS posts, sum(like_count) AS likes
FROM x_posts
GROUP BY 1, 2
