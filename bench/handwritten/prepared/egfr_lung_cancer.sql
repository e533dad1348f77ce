-- EGFR exon 19 deletion or L858R, lung cancer, alive (examples/egfr_lung_cancer.cohort):
-- final count and breakdown of the final cohort by `report by region, year`, as antal returns them
-- (the same on the raw Parquet files: ../egfr_lung_cancer.sql).
-- On the prepared layout (antal prepare; run on a connection to the prepared file): tables by
-- name, code tables "<register>#<column>" with one code per row sorted by code (a code set
-- also as one BETWEEN range, for the zone maps); staged as in the raw-Parquet query.
WITH idx AS (
    SELECT lopnr, min(provdatum) AS index_date
    FROM gms
    WHERE gene = 'EGFR' AND variant IN ('p.L858R', 'p.E746_A750del')
      AND klass IN ('patogen', 'trolig patogen')
    GROUP BY lopnr
),
s0 AS (  -- in the population register, not opted out of research
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, p.lan
    FROM idx i
    JOIN population p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM optout o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
),
s1 AS (  -- adult
    SELECT * FROM s0 c
    WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
          BETWEEN 12 * 18 AND 12 * 120 + 11
),
s2 AS (  -- a C34* contact within 365 days of the index
    SELECT * FROM s1 c WHERE EXISTS (
        SELECT 1 FROM "npr#diagnos" n
        WHERE n.lopnr = c.lopnr AND (n.diagnos LIKE 'C34%')
          AND n.indatum BETWEEN c.index_date - 365 AND c.index_date + 365
    )
),
s3 AS (  -- alive
    SELECT * FROM s2 c WHERE NOT EXISTS (
        SELECT 1 FROM dors d
        WHERE d.lopnr = c.lopnr AND d.dodsdat IS NOT NULL
    )
)
SELECT c.lan AS region,
       year(c.index_date) AS year,
       GROUPING(region, year) AS total, count(*) AS n
FROM s3 c
GROUP BY GROUPING SETS ((), (region, year))
