-- Rheumatoid arthritis, first advanced therapy after methotrexate (examples/ra_biologics.cohort):
-- final count and breakdown of the final cohort by `report by region, sex`, as antal returns them
-- (the attrition: ra_biologics.attrition.sql; the final count only: ra_biologics.final.sql).
-- Staged: each step a CTE of the survivors of the step before (s0 the index, s1 ...), each
-- criterion a semi or anti join on them; codes matched with LIKE item matches, a register
-- read once where several criteria need it.
WITH l AS MATERIALIZED (  -- lmr read once: advanced therapies and methotrexate
    SELECT lopnr, edatum, atc IN ('L04AX03', 'L01BA01') AS mtx
    FROM read_parquet('{data}/lmr.parquet')
    WHERE atc LIKE 'L04AB%' OR atc IN ('L04AC03', 'L04AC07', 'L04AC14', 'L04AA29', 'L04AA37',
        'L04AA44', 'L04AA45', 'L04AF01', 'L04AF02', 'L04AF03', 'L04AF04', 'L01FA01', 'L01XC02',
        'L04AA24', 'L04AX03', 'L01BA01')
),
adv AS MATERIALIZED (  -- every advanced therapy, dispensed (lmr) or given in care (rekvisition)
    SELECT lopnr, edatum AS d FROM l WHERE NOT mtx
    UNION ALL
    SELECT lopnr, adm_datum AS d FROM read_parquet('{data}/rekvisition.parquet')
    WHERE atc LIKE 'L04AB%' OR atc IN ('L04AC03', 'L04AC07', 'L04AC14', 'L04AA29', 'L04AA37',
        'L04AA44', 'L04AA45', 'L04AF01', 'L04AF02', 'L04AF03', 'L04AF04', 'L01FA01', 'L01XC02',
        'L04AA24')
),
idx AS (  -- the first one in 2016-01-01..2025-06-30; also whether there was one before
    SELECT lopnr, min(d) FILTER (WHERE d BETWEEN DATE '2016-01-01' AND DATE '2025-06-30') AS index_date,
           bool_or(d < DATE '2016-01-01') AS earlier
    FROM adv
    GROUP BY lopnr
    HAVING index_date IS NOT NULL
),
s0 AS (  -- in the population register, not opted out of research
    SELECT i.lopnr, i.index_date, i.earlier, p.fodelsear, p.fodelsemanad, p.lan, p.kon
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
),
s1 AS (  -- adult
    SELECT * FROM s0 c
    WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
          BETWEEN 12 * 18 AND 12 * 120 + 11
),
s2 AS (  -- an M05*/M06* contact on or before the index
    SELECT * FROM s1 c WHERE EXISTS (
        SELECT 1 FROM read_parquet('{data}/npr.parquet') n
        WHERE n.lopnr = c.lopnr
          AND (n.diagnos LIKE 'M05%' OR n.diagnos LIKE '% M05%'
               OR n.diagnos LIKE 'M06%' OR n.diagnos LIKE '% M06%')
          AND n.indatum <= c.index_date
    )
),
s3 AS (  -- methotrexate dispensed before the index
    SELECT * FROM s2 c WHERE EXISTS (
        SELECT 1 FROM l WHERE l.lopnr = c.lopnr AND l.mtx AND l.edatum < c.index_date
    )
),
s4 AS (  -- no advanced therapy before the index (the index is the first from 2016 on)
    SELECT * FROM s3 WHERE earlier IS NOT TRUE
)
SELECT c.lan AS region,
       CASE c.kon WHEN 1 THEN 'male' WHEN 2 THEN 'female' END AS sex,
       GROUPING(region, sex) AS total, count(*) AS n
FROM s4 c
GROUP BY GROUPING SETS ((), (region, sex))
