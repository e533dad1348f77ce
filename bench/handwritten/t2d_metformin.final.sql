-- Newly diagnosed T2D, uncontrolled on metformin, 40-75 (examples/t2d_metformin.cohort): final count only.
-- Staged: each step a CTE of the survivors of the step before (s0 the index, s1 ...), each
-- criterion a semi or anti join on them; codes matched with LIKE item matches, a register
-- read once where several criteria need it.
WITH n AS MATERIALIZED (  -- npr read once: contacts with any code asked for, a flag per codeset
    SELECT * FROM (
        SELECT lopnr, indatum,
               diagnos LIKE 'E11%' OR diagnos LIKE '% E11%' AS e11,
               diagnos LIKE 'E10%' OR diagnos LIKE '% E10%' AS e10,
               diagnos LIKE 'I21%' OR diagnos LIKE '% I21%'
                   OR diagnos LIKE 'I22%' OR diagnos LIKE '% I22%' AS mi
        FROM read_parquet('{data}/npr.parquet')
    )
    WHERE e11 OR e10 OR mi
),
l AS MATERIALIZED (  -- lmr read once: every glucose-lowering drug (A10*)
    SELECT lopnr, edatum, atc FROM read_parquet('{data}/lmr.parquet') WHERE atc LIKE 'A10%'
),
idx AS (
    SELECT lopnr, min(indatum) AS index_date
    FROM n
    WHERE e11 AND indatum BETWEEN DATE '2015-01-01' AND DATE '2023-12-31'
    GROUP BY lopnr
),
s0 AS (  -- in the population register, not opted out of research
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, p.lan, p.kon
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
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
        SELECT 1 FROM n WHERE n.lopnr = c.lopnr AND n.e11
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
        SELECT 1 FROM read_parquet('{data}/lmr.parquet') l WHERE l.lopnr = c.lopnr  -- own scan: the IN list is pushed into it
          AND l.atc IN ('A10BA02', 'A10BD02', 'A10BD03', 'A10BD05', 'A10BD14', 'A10BD17', 'A10BD26',
                        'A10BD07', 'A10BD08', 'A10BD10', 'A10BD11', 'A10BD13', 'A10BD18', 'A10BD22',
                        'A10BD15', 'A10BD16', 'A10BD20', 'A10BD23', 'A10BD25', 'A10BD27')
          AND l.edatum BETWEEN c.index_date AND c.index_date + 90
    )
),
hb AS (  -- latest non-missing HbA1c 180..730 days after, of the survivors (ties: the highest)
    SELECT c.lopnr, r.hba1c
    FROM s4 c
    JOIN read_parquet('{data}/ndr.parquet') r ON r.lopnr = c.lopnr
    WHERE r.hba1c IS NOT NULL
      AND r.regdat BETWEEN c.index_date + 180 AND c.index_date + 730
    QUALIFY row_number() OVER (PARTITION BY c.lopnr ORDER BY r.regdat DESC, r.hba1c DESC) = 1
),
s5 AS (
    SELECT * FROM s4 WHERE lopnr IN (SELECT lopnr FROM hb WHERE hba1c > 53)
),
s6 AS (  -- no type 1 diabetes
    SELECT * FROM s5 c WHERE NOT EXISTS (
        SELECT 1 FROM n WHERE n.lopnr = c.lopnr AND n.e10 AND n.indatum IS NOT NULL
    )
),
s7 AS (  -- no MI before
    SELECT * FROM s6 c WHERE NOT EXISTS (
        SELECT 1 FROM n WHERE n.lopnr = c.lopnr AND n.mi AND n.indatum < c.index_date
    )
),
s8 AS (  -- no insulin 0..730 days after
    SELECT * FROM s7 c WHERE NOT EXISTS (
        SELECT 1 FROM l WHERE l.lopnr = c.lopnr AND l.atc LIKE 'A10A%'
          AND l.edatum BETWEEN c.index_date AND c.index_date + 730
    )
)
SELECT count(*) AS n FROM s8
