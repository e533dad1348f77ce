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
n AS MATERIALIZED (  -- npr read once, up to the index date: COPD contacts and exacerbation
                     -- admissions (inpatient, main diagnosis J440 or J441: whole codes), a flag each
    SELECT * FROM (
        SELECT lopnr, indatum,
               diagnos LIKE 'J44%' OR diagnos LIKE '% J44%' AS copd,
               vardform = 'S' AND hdia IN ('J440', 'J441') AS exacerbation
        FROM read_parquet('{data}/npr.parquet')
        WHERE indatum <= DATE '2025-01-01'
    )
    WHERE copd OR exacerbation
),
s2 AS (  -- a J44* contact before the index date
    SELECT * FROM s1
    WHERE lopnr IN (SELECT lopnr FROM n WHERE copd AND indatum < DATE '2025-01-01')
),
s3 AS (  -- exacerbation admissions on at least 2 days in 2024-01-02..2025-01-01 (365 days
         -- before the index, the index day included)
    SELECT * FROM s2
    WHERE lopnr IN (
        SELECT lopnr FROM n
        WHERE exacerbation AND indatum BETWEEN DATE '2024-01-02' AND DATE '2025-01-01'
        GROUP BY lopnr HAVING count(DISTINCT indatum) >= 2
    )
),
s4 AS (  -- inhaled maintenance dispensed in 2024-01-02..2025-01-01; no short-acting agent
    SELECT * FROM s3
    WHERE lopnr IN (
        SELECT lopnr FROM read_parquet('{data}/lmr.parquet')
        WHERE (atc IN ('R03AC12', 'R03AC13', 'R03AC18', 'R03AC19',  -- long-acting beta agonists
                       'R03AL03', 'R03AL04', 'R03AL05', 'R03AL06',  -- long-acting dual and
                       'R03AL07', 'R03AL08', 'R03AL09', 'R03AL11',  -- triple combinations
                       'R03BB04', 'R03BB05', 'R03BB06', 'R03BB07')  -- long-acting antimuscarinics
               OR atc LIKE 'R03AK%' OR atc LIKE 'R03BA%')
          AND edatum BETWEEN DATE '2024-01-02' AND DATE '2025-01-01'
    )
)
SELECT c.lan AS region,
       GROUPING(region) AS total, count(*) AS n
FROM s4 c
GROUP BY GROUPING SETS ((), (region))
