-- Ischaemic stroke within 30 days after a first MI (examples/stroke_after_mi.cohort):
-- final count and breakdown of the final cohort by `report by year`, as antal returns them
-- (the same on the raw Parquet files: ../stroke_after_mi.sql).
-- On the prepared layout (antal prepare; run on a connection to the prepared file): tables by
-- name, code tables "<register>#<column>" with one code per row sorted by code (a code set
-- also as one BETWEEN range, for the zone maps); staged as in the raw-Parquet query.
WITH mi AS MATERIALIZED (  -- I21*, I22* contacts: ranges of the code-sorted table
    SELECT lopnr, indatum FROM "npr#diagnos" WHERE diagnos LIKE 'I21%' OR diagnos LIKE 'I22%'
),
stroke AS MATERIALIZED (  -- I63*, I64* contacts
    SELECT lopnr, indatum FROM "npr#diagnos" WHERE diagnos LIKE 'I63%' OR diagnos LIKE 'I64%'
),
idx AS (  -- the first MI contact in 2011-01-01..2024-11-30
    SELECT lopnr, min(indatum) AS index_date
    FROM mi
    WHERE indatum BETWEEN DATE '2011-01-01' AND DATE '2024-11-30'
    GROUP BY lopnr
),
s0 AS (  -- in the population register, not opted out of research
    SELECT i.lopnr, i.index_date
    FROM idx i
    JOIN population p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM optout o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
),
s1 AS (  -- no MI 1..1825 days before
    SELECT * FROM s0 c WHERE NOT EXISTS (
        SELECT 1 FROM mi n WHERE n.lopnr = c.lopnr
          AND n.indatum BETWEEN c.index_date - 1825 AND c.index_date - 1
    )
),
s2 AS (  -- no stroke before
    SELECT * FROM s1 c WHERE NOT EXISTS (
        SELECT 1 FROM stroke n WHERE n.lopnr = c.lopnr AND n.indatum < c.index_date
    )
),
s3 AS (  -- a stroke 0..30 days after (the infarction's own stay included), in npr or as the
         -- underlying cause of a death (a range of dors' code-sorted table)
    SELECT * FROM s2 c
    WHERE EXISTS (
        SELECT 1 FROM stroke n WHERE n.lopnr = c.lopnr
          AND n.indatum BETWEEN c.index_date AND c.index_date + 30
    )
    OR EXISTS (
        SELECT 1 FROM "dors#ulorsak" d
        WHERE d.lopnr = c.lopnr AND (d.ulorsak LIKE 'I63%' OR d.ulorsak LIKE 'I64%')
          AND d.dodsdat BETWEEN c.index_date AND c.index_date + 30
    )
)
SELECT year(c.index_date) AS year,
       GROUPING(year) AS total, count(*) AS n
FROM s3 c
GROUP BY GROUPING SETS ((), (year))
