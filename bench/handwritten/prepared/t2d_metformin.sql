-- Newly diagnosed T2D, uncontrolled on metformin, 40-75 (examples/t2d_metformin.cohort):
-- final count and breakdown of the final cohort by `report by region, sex`, as antal returns them
-- (the same on the raw Parquet files: ../t2d_metformin.sql).
-- On the prepared layout (antal prepare; run on a connection to the prepared file): tables by
-- name, code tables "<register>#<column>" with one code per row sorted by code (a code set
-- also as one BETWEEN range, for the zone maps); staged as in the raw-Parquet query.
WITH e11 AS MATERIALIZED (  -- E11* contacts: a range of the code-sorted table
    SELECT lopnr, indatum FROM "npr#diagnos" WHERE diagnos LIKE 'E11%'
),
l AS MATERIALIZED (  -- lmr read once: every glucose-lowering drug (A10*)
    SELECT lopnr, edatum, atc FROM "lmr#atc" WHERE atc LIKE 'A10%'
),
idx AS (
    SELECT lopnr, min(indatum) AS index_date
    FROM e11
    WHERE indatum BETWEEN DATE '2015-01-01' AND DATE '2023-12-31'
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
s1 AS (  -- age 40-75
    SELECT * FROM s0 c
    WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
          BETWEEN 12 * 40 AND 12 * 75 + 11
),
s2 AS (  -- no E11 contact 1..1825 days before
    SELECT * FROM s1 c
    WHERE NOT EXISTS (
        SELECT 1 FROM e11 n WHERE n.lopnr = c.lopnr
          AND n.indatum BETWEEN c.index_date - 1825 AND c.index_date - 1
    )
),
s3 AS (  -- no A10* dispensed 1..1825 days before
    SELECT * FROM s2 c
    WHERE NOT EXISTS (
        SELECT 1 FROM l WHERE l.lopnr = c.lopnr
          AND l.edatum BETWEEN c.index_date - 1825 AND c.index_date - 1
    )
),
s4 AS (  -- metformin (alone or in a fixed combination) 0..90 days after
    SELECT * FROM s3 c
    WHERE EXISTS (
        SELECT 1 FROM "lmr#atc" l WHERE l.lopnr = c.lopnr  -- own scan: a range of the code-sorted table
          AND l.atc BETWEEN 'A10BA02' AND 'A10BD27'
          AND l.atc IN ('A10BA02', 'A10BD02', 'A10BD03', 'A10BD05', 'A10BD14', 'A10BD17', 'A10BD26',
                        'A10BD07', 'A10BD08', 'A10BD10', 'A10BD11', 'A10BD13', 'A10BD18', 'A10BD22',
                        'A10BD15', 'A10BD16', 'A10BD20', 'A10BD23', 'A10BD25', 'A10BD27')
          AND l.edatum BETWEEN c.index_date AND c.index_date + 90
    )
),
hb AS (  -- latest non-missing HbA1c 180..730 days after, of the survivors (ties: the highest)
    SELECT c.lopnr, r.hba1c
    FROM s4 c
    JOIN ndr r ON r.lopnr = c.lopnr
    WHERE r.hba1c IS NOT NULL
      AND r.regdat BETWEEN c.index_date + 180 AND c.index_date + 730
    QUALIFY row_number() OVER (PARTITION BY c.lopnr ORDER BY r.regdat DESC, r.hba1c DESC) = 1
),
s5 AS (
    SELECT * FROM s4 WHERE lopnr IN (SELECT lopnr FROM hb WHERE hba1c > 53)
),
s6 AS (  -- no type 1 diabetes
    SELECT * FROM s5 c WHERE NOT EXISTS (
        SELECT 1 FROM "npr#diagnos" n WHERE n.lopnr = c.lopnr AND n.diagnos LIKE 'E10%'
          AND n.indatum IS NOT NULL
    )
),
s7 AS (  -- no MI before
    SELECT * FROM s6 c WHERE NOT EXISTS (
        SELECT 1 FROM "npr#diagnos" n WHERE n.lopnr = c.lopnr
          AND (n.diagnos LIKE 'I21%' OR n.diagnos LIKE 'I22%') AND n.indatum < c.index_date
    )
),
s8 AS (  -- no insulin 0..730 days after
    SELECT * FROM s7 c WHERE NOT EXISTS (
        SELECT 1 FROM l WHERE l.lopnr = c.lopnr AND l.atc LIKE 'A10A%'
          AND l.edatum BETWEEN c.index_date AND c.index_date + 730
    )
)
SELECT c.lan AS region,
       CASE c.kon WHEN 1 THEN 'male' WHEN 2 THEN 'female' END AS sex,
       GROUPING(region, sex) AS total, count(*) AS n
FROM s8 c
GROUP BY GROUPING SETS ((), (region, sex))
