-- COPD with two exacerbation admissions in the past year, 1 January 2025 (examples/copd_exacerbations.cohort):
-- final count and breakdown of the final cohort by `report by region`, as antal returns them
-- (the attrition: copd_exacerbations.attrition.sql; the final count only: copd_exacerbations.final.sql).
-- Staged: each step a CTE of the survivors of the step before (s0 the index, s1 ...), each
-- criterion a semi or anti join on them; codes matched with LIKE item matches, a register
-- read once where several criteria need it.
WITH s0 AS (  -- born in or before the index month, alive on 2025-01-01, not opted out
    SELECT p.lopnr, DATE '2025-01-01' AS index_date, p.fodelsear, p.fodelsemanad, p.lan
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
s1 AS (  -- age 40-120 on 2025-01-01
    SELECT * FROM s0 c
    WHERE 12 * 2025 + 1 - 12 * c.fodelsear - c.fodelsemanad BETWEEN 12 * 40 AND 12 * 120 + 11
),
s2 AS (  -- a J44* contact before the index date
    SELECT * FROM s1
    WHERE lopnr IN (
        SELECT lopnr FROM read_parquet('{data}/npr.parquet')
        WHERE (diagnos LIKE 'J44%' OR diagnos LIKE '% J44%') AND indatum < DATE '2025-01-01'
    )
),
s3 AS (  -- at least 2 inpatient days with main diagnosis J441 in 2024-01-02..2025-01-01
    SELECT * FROM s2
    WHERE lopnr IN (
        SELECT lopnr FROM read_parquet('{data}/npr.parquet')
        WHERE vardform = 'S' AND hdia = 'J441'
          AND indatum BETWEEN DATE '2024-01-02' AND DATE '2025-01-01'
        GROUP BY lopnr HAVING count(DISTINCT indatum) >= 2
    )
),
s4 AS (  -- inhaled maintenance dispensed in 2024-01-02..2025-01-01
    SELECT * FROM s3
    WHERE lopnr IN (
        SELECT lopnr FROM read_parquet('{data}/lmr.parquet')
        WHERE (atc IN ('R03AC12', 'R03AC13', 'R03AC18', 'R03AC19')
               OR atc LIKE 'R03AK%' OR atc LIKE 'R03AL%' OR atc LIKE 'R03BA%' OR atc LIKE 'R03BB%')
          AND edatum BETWEEN DATE '2024-01-02' AND DATE '2025-01-01'
    )
)
SELECT c.lan AS region,
       GROUPING(region) AS total, count(*) AS n
FROM s4 c
GROUP BY GROUPING SETS ((), (region))
