-- Admitted with heart failure, 50-85: sites and monthly rate (examples/recruitment_hf_sites.cohort): final count only.
WITH hf AS (  -- inpatient stays with heart failure as main diagnosis, from 365 days before the
              -- earliest possible index (2023-01-01) on: the index events and the washout's
    SELECT lopnr, indatum, sjukhus
    FROM read_parquet('{data}/npr.parquet')
    WHERE vardform = 'S' AND hdia IN ('I50', 'I500', 'I501', 'I509')
      AND indatum BETWEEN DATE '2022-01-01' AND DATE '2025-09-30'
),
ix AS (  -- the index events
    SELECT lopnr, indatum, sjukhus FROM hf WHERE indatum >= DATE '2023-01-01'
),
idx AS (  -- the first one; hospital: the smallest sjukhus among the index events that day
    SELECT ix.lopnr, f.index_date, min(ix.sjukhus) AS hospital
    FROM (SELECT lopnr, min(indatum) AS index_date FROM ix GROUP BY lopnr) f
    JOIN ix ON ix.lopnr = f.lopnr AND ix.indatum = f.index_date
    GROUP BY ix.lopnr, f.index_date
),
cohort AS (  -- in the population register, not opted out of research
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, i.hospital
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
)
SELECT count(*) AS n
FROM cohort c
WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
      BETWEEN 12 * 50 AND 12 * 85 + 11
  AND NOT EXISTS (
      SELECT 1 FROM hf h
      WHERE h.lopnr = c.lopnr
        AND h.indatum BETWEEN c.index_date - INTERVAL 365 DAY AND c.index_date - INTERVAL 1 DAY
  )
  AND NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND (n.diagnos LIKE 'E10%' OR n.diagnos LIKE '% E10%')
        AND n.indatum IS NOT NULL
  )
