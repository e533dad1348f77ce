-- New metformin users with type 2 diabetes, uncontrolled on it, 40-75 (examples/t2d_metformin.cohort): every attrition step.
-- Staged: each step a CTE of the survivors of the step before (s0 the index, s1 ...), each
-- criterion a semi or anti join on them; codes matched with LIKE item matches, a register
-- read once where several criteria need it.
WITH l AS MATERIALIZED (  -- lmr read once: every glucose-lowering drug (A10*), a flag for metformin and insulin
    SELECT lopnr, edatum,
           atc IN ('A10BA02', 'A10BD02', 'A10BD03', 'A10BD05', 'A10BD14', 'A10BD17', 'A10BD26',
                   'A10BD07', 'A10BD08', 'A10BD10', 'A10BD11', 'A10BD13', 'A10BD18', 'A10BD22',
                   'A10BD15', 'A10BD16', 'A10BD20', 'A10BD23', 'A10BD25', 'A10BD27') AS metf,
           atc LIKE 'A10A%' AS insulin
    FROM read_parquet('{data}/lmr.parquet')
    WHERE atc LIKE 'A10%'
),
n AS MATERIALIZED (  -- npr read once: contacts with any code asked for, a flag per codeset
    SELECT * FROM (
        SELECT lopnr, indatum,
               diagnos LIKE 'E10%' OR diagnos LIKE '% E10%' AS e10,
               diagnos LIKE 'I21%' OR diagnos LIKE '% I21%'
                   OR diagnos LIKE 'I22%' OR diagnos LIKE '% I22%' AS mi
        FROM read_parquet('{data}/npr.parquet')
    )
    WHERE e10 OR mi
),
idx AS (  -- the first metformin dispensation, alone or in a fixed combination, in 2015-2023
    SELECT lopnr, min(edatum) AS index_date
    FROM l
    WHERE metf AND edatum BETWEEN DATE '2015-01-01' AND DATE '2023-12-31'
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
s2 AS (  -- a new user: no A10* dispensed 1..1825 days before (metformin included)
    SELECT * FROM s1 c
    WHERE NOT EXISTS (
        SELECT 1 FROM l WHERE l.lopnr = c.lopnr
          AND l.edatum BETWEEN c.index_date - 1825 AND c.index_date - 1
    )
),
r AS MATERIALIZED (  -- ndr read once: the survivors' records 365 days before to 730 after,
                     -- the span of both NDR criteria
    SELECT c.lopnr, c.index_date, r.regdat, r.diabetestyp, r.hba1c
    FROM s2 c
    JOIN read_parquet('{data}/ndr.parquet') r ON r.lopnr = c.lopnr
    WHERE r.regdat BETWEEN c.index_date - 365 AND c.index_date + 730
),
s3 AS (  -- type 2 diabetes registered in NDR 365 days before to 365 days after
    SELECT * FROM s2
    WHERE lopnr IN (
        SELECT lopnr FROM r WHERE diabetestyp = 2 AND regdat <= index_date + 365
    )
),
hb AS (  -- latest non-missing HbA1c 180..730 days after, of the survivors (ties: the highest)
    SELECT r.lopnr, r.hba1c
    FROM r
    WHERE r.hba1c IS NOT NULL AND r.regdat >= r.index_date + 180
      AND r.lopnr IN (SELECT lopnr FROM s3)
    QUALIFY row_number() OVER (PARTITION BY r.lopnr ORDER BY r.regdat DESC, r.hba1c DESC) = 1
),
s4 AS (
    SELECT * FROM s3 WHERE lopnr IN (SELECT lopnr FROM hb WHERE hba1c > 53)
),
s5 AS (  -- no type 1 diabetes, at any date
    SELECT * FROM s4 c WHERE NOT EXISTS (
        SELECT 1 FROM n WHERE n.lopnr = c.lopnr AND n.e10 AND n.indatum IS NOT NULL
    )
),
s6 AS (  -- no MI before
    SELECT * FROM s5 c WHERE NOT EXISTS (
        SELECT 1 FROM n WHERE n.lopnr = c.lopnr AND n.mi AND n.indatum < c.index_date
    )
),
s7 AS (  -- no insulin (A10A*) dispensed 0..730 days after
    SELECT * FROM s6 c WHERE NOT EXISTS (
        SELECT 1 FROM l WHERE l.lopnr = c.lopnr AND l.insulin
          AND l.edatum BETWEEN c.index_date AND c.index_date + 730
    )
)
SELECT (SELECT count(*) FROM s0) AS n0,
       (SELECT count(*) FROM s1) AS n1,
       (SELECT count(*) FROM s2) AS n2,
       (SELECT count(*) FROM s3) AS n3,
       (SELECT count(*) FROM s4) AS n4,
       (SELECT count(*) FROM s5) AS n5,
       (SELECT count(*) FROM s6) AS n6,
       (SELECT count(*) FROM s7) AS n7
