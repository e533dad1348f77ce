-- Atrial fibrillation, not on an oral anticoagulant, 1 January 2025 (examples/af_without_anticoagulant.cohort): every attrition step.
-- Staged: each step a CTE of the survivors of the step before (s0 the index, s1 ...), each
-- criterion a semi or anti join on them; codes matched with LIKE item matches, a register
-- read once where several criteria need it.
WITH s0 AS (  -- born in or before the index month, alive on 2025-01-01, not opted out
    SELECT p.lopnr, DATE '2025-01-01' AS index_date, p.fodelsear, p.fodelsemanad, p.kon
    FROM read_parquet('{data}/population.parquet') p
    WHERE 12 * p.fodelsear + p.fodelsemanad <= 12 * 2025 + 1
      AND NOT EXISTS (
          SELECT 1 FROM read_parquet('{data}/dors.parquet') d
          WHERE d.lopnr = p.lopnr AND d.dodsdat < DATE '2025-01-01'
      )
      AND NOT EXISTS (
          SELECT 1 FROM read_parquet('{data}/optout.parquet') o
          WHERE o.lopnr = p.lopnr AND o.andamal IN ('forskning', 'alla')
      )
),
s1 AS (  -- age 65-120 on 2025-01-01
    SELECT * FROM s0 c
    WHERE 12 * 2025 + 1 - 12 * c.fodelsear - c.fodelsemanad BETWEEN 12 * 65 AND 12 * 120 + 11
),
s2 AS (  -- an I48* contact before the index date
    SELECT * FROM s1
    WHERE lopnr IN (
        SELECT lopnr FROM read_parquet('{data}/npr.parquet')
        WHERE (diagnos LIKE 'I48%' OR diagnos LIKE '% I48%') AND indatum < DATE '2025-01-01'
    )
),
s3 AS (  -- no oral anticoagulant dispensed 2024-07-05..2025-01-01 (180 days before)
    SELECT * FROM s2
    WHERE lopnr NOT IN (
        SELECT lopnr FROM read_parquet('{data}/lmr.parquet')
        WHERE (atc IN ('B01AA03', 'B01AE07') OR atc LIKE 'B01AF%')
          AND edatum BETWEEN DATE '2024-07-05' AND DATE '2025-01-01' AND lopnr IS NOT NULL
    )
)
SELECT (SELECT count(*) FROM s0) AS n0,
       (SELECT count(*) FROM s1) AS n1,
       (SELECT count(*) FROM s2) AS n2,
       (SELECT count(*) FROM s3) AS n3
