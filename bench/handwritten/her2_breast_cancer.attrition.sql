-- HER2-positive breast cancer, stage II-III, operated, tissue banked (examples/her2_breast_cancer.cohort): every attrition step.
-- Staged: each step a CTE of the survivors of the step before (s0 the index, s1 ...), each
-- criterion a semi or anti join on them; codes matched with LIKE item matches, a register
-- read once where several criteria need it.
WITH idx AS (
    SELECT lopnr, min(diagnosdatum) AS index_date
    FROM read_parquet('{data}/nkbc.parquet')
    WHERE her2 = 'positiv' AND stadium IN ('II', 'III')
      AND diagnosdatum BETWEEN DATE '2015-01-01' AND DATE '2024-12-31'
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
s1 AS (SELECT * FROM s0 WHERE kon = 2),  -- women
s2 AS (  -- age 18-80
    SELECT * FROM s1 c
    WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
          BETWEEN 12 * 18 AND 12 * 80 + 11
),
s3 AS (  -- breast surgery (HAB*, HAC*) 0..365 days after
    SELECT * FROM s2 c WHERE EXISTS (
        SELECT 1 FROM read_parquet('{data}/npr.parquet') n
        WHERE n.lopnr = c.lopnr
          AND (n.op LIKE 'HAB%' OR n.op LIKE '% HAB%' OR n.op LIKE 'HAC%' OR n.op LIKE '% HAC%')
          AND n.indatum BETWEEN c.index_date AND c.index_date + 365
    )
),
s4 AS (  -- tissue in a biobank on or after the index
    SELECT * FROM s3 c WHERE EXISTS (
        SELECT 1 FROM read_parquet('{data}/biobank.parquet') b
        WHERE b.lopnr = c.lopnr AND b.provtyp IN ('vavnad_ffpe', 'vavnad_frusen')
          AND b.provdatum >= c.index_date
    )
)
SELECT (SELECT count(*) FROM s0) AS n0,
       (SELECT count(*) FROM s1) AS n1,
       (SELECT count(*) FROM s2) AS n2,
       (SELECT count(*) FROM s3) AS n3,
       (SELECT count(*) FROM s4) AS n4
