-- HER2-positive breast cancer, stage II-III, operated, tissue banked (examples/her2_breast_cancer.cohort):
-- final count and breakdown of the final cohort by `report by region, age 10`, as antal returns them
-- (the same on the raw Parquet files: ../her2_breast_cancer.sql).
-- On the prepared layout (antal prepare; run on a connection to the prepared file): tables by
-- name, code tables "<register>#<column>" with one code per row sorted by code (a code set
-- also as one BETWEEN range, for the zone maps); staged as in the raw-Parquet query.
WITH idx AS (
    SELECT lopnr, min(diagnosdatum) AS index_date
    FROM nkbc
    WHERE her2 = 'positiv' AND stadium IN ('II', 'III')
      AND diagnosdatum BETWEEN DATE '2015-01-01' AND DATE '2024-12-31'
    GROUP BY lopnr
),
s0 AS (  -- in the population register, not opted out of research
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, p.lan, p.kon
    FROM idx i
    JOIN population p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM optout o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
),
s1 AS (SELECT * FROM s0 WHERE kon = 2),  -- women
s2 AS (  -- age 18-80
    SELECT * FROM s1 c
    WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
          BETWEEN 12 * 18 AND 12 * 80 + 11
),
s3 AS (  -- breast surgery (HAB*, HAC*) 0..365 days after
    SELECT * FROM s2 c WHERE EXISTS (
        SELECT 1 FROM "npr#op" n
        WHERE n.lopnr = c.lopnr
          AND (n.op LIKE 'HAB%' OR n.op LIKE 'HAC%')
          AND n.indatum BETWEEN c.index_date AND c.index_date + 365
    )
),
s4 AS (  -- tissue in a biobank on or after the index
    SELECT * FROM s3 c WHERE EXISTS (
        SELECT 1 FROM biobank b
        WHERE b.lopnr = c.lopnr AND b.provtyp IN ('vavnad_ffpe', 'vavnad_frusen')
          AND b.provdatum >= c.index_date
    )
)
SELECT c.lan AS region,
       CAST(floor((12 * year(c.index_date) + month(c.index_date)
                   - 12 * c.fodelsear - c.fodelsemanad) / 120) AS INT) * 10 AS age_10,
       GROUPING(region, age_10) AS total, count(*) AS n
FROM s4 c
GROUP BY GROUPING SETS ((), (region, age_10))
