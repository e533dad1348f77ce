-- Type 2 diabetes in primary care, 1 January 2024 (examples/diabetic_population_2024.cohort): every attrition step.
-- Staged: each step a CTE of the survivors of the step before (s0 the index, s1 ...), each
-- criterion a semi or anti join on them; codes matched with LIKE item matches, a register
-- read once where several criteria need it.
WITH s0 AS (  -- born in or before the index month, alive on 2024-01-01, not opted out
    SELECT p.lopnr, DATE '2024-01-01' AS index_date, p.fodelsear, p.fodelsemanad, p.lan
    FROM read_parquet('{data}/population.parquet') p
    WHERE 12 * p.fodelsear + p.fodelsemanad <= 12 * 2024 + 1
      AND NOT EXISTS (
          SELECT 1 FROM read_parquet('{data}/dors.parquet') d
          WHERE d.lopnr = p.lopnr AND d.dodsdat < DATE '2024-01-01'
      )
      AND NOT EXISTS (
          SELECT 1 FROM read_parquet('{data}/optout.parquet') o
          WHERE o.lopnr = p.lopnr AND o.andamal IN ('forskning', 'alla')
      )
),
s1 AS (  -- age 18-80 on 2024-01-01
    SELECT * FROM s0 c
    WHERE 12 * 2024 + 1 - 12 * c.fodelsear - c.fodelsemanad BETWEEN 12 * 18 AND 12 * 80 + 11
),
s2 AS (  -- type 2 in NDR with an HbA1c in 2023-01-01..2024-01-01
    SELECT * FROM s1
    WHERE lopnr IN (
        SELECT lopnr FROM read_parquet('{data}/ndr.parquet')
        WHERE hba1c > 0 AND diabetestyp = 2
          AND regdat BETWEEN DATE '2023-01-01' AND DATE '2024-01-01'
    )
),
s3 AS (  -- no E11* main diagnosis in specialist care in 2023-01-01..2024-01-01
    SELECT * FROM s2
    WHERE lopnr NOT IN (
        SELECT lopnr FROM read_parquet('{data}/npr.parquet')
        WHERE hdia LIKE 'E11%' AND indatum BETWEEN DATE '2023-01-01' AND DATE '2024-01-01'
          AND lopnr IS NOT NULL
    )
)
SELECT (SELECT count(*) FROM s0) AS n0,
       (SELECT count(*) FROM s1) AS n1,
       (SELECT count(*) FROM s2) AS n2,
       (SELECT count(*) FROM s3) AS n3
