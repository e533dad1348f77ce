-- Admitted with heart failure, 50-85: sites and monthly rate (examples/recruitment_hf_sites.cohort):
-- final count and breakdown of the final cohort by the first table, `report by hospital with rollup`
-- at the hospital level (antal's res.cells; the län, healthcare-region and monthly tables are left out),
-- as antal returns them (the attrition: recruitment_hf_sites.attrition.sql; the final count only:
-- recruitment_hf_sites.final.sql).
-- Episodes (`index each`): one row per (person, index date). Staged: each step a CTE of the survivors of the step before (s0 the index, s1 ...), each
-- criterion a semi or anti join on them; codes matched with LIKE item matches, a register
-- read once where several criteria need it.
WITH hf AS MATERIALIZED (  -- inpatient stays with heart failure as main diagnosis, from 365 days
                           -- before the window (2023-01-01): the washout
    SELECT lopnr, indatum, sjukhus
    FROM read_parquet('{data}/npr.parquet')
    WHERE vardform = 'S' AND hdia IN ('I50', 'I500', 'I501', 'I509')
      AND indatum BETWEEN DATE '2022-01-01' AND DATE '2025-09-30'
),
days AS (  -- each person's admission days, with the admission before each (any date from
            -- 2022-01-01: the washout looks back 365 days from the window's start)
    SELECT lopnr, indatum, min(sjukhus) AS hospital,  -- the smallest sjukhus of that day
           lag(indatum) OVER (PARTITION BY lopnr ORDER BY indatum) AS prev
    FROM hf
    GROUP BY lopnr, indatum
),
idx AS (  -- every admission from 2023-01-01 with none in the 365 days before: an episode
    SELECT lopnr, indatum AS index_date, hospital
    FROM days
    WHERE indatum >= DATE '2023-01-01' AND (prev IS NULL OR prev < indatum - 365)
),
s0 AS (  -- in the population register, not opted out of research
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, i.hospital
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
),
s1 AS (  -- aged 50-85 at admission
    SELECT * FROM s0 c
    WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
          BETWEEN 12 * 50 AND 12 * 85 + 11
),
s2 AS (  -- no type 1 diabetes
    SELECT * FROM s1 c WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/npr.parquet') n
        WHERE n.lopnr = c.lopnr AND (n.diagnos LIKE 'E10%' OR n.diagnos LIKE '% E10%')
          AND n.indatum IS NOT NULL
    )
)
SELECT c.hospital,
       GROUPING(hospital) AS total, count(*) AS n
FROM s2 c
GROUP BY GROUPING SETS ((), (hospital))
