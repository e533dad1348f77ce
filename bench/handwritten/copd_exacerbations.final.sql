-- COPD with two exacerbation admissions in a year (examples/copd_exacerbations.cohort): final count only.
WITH idx AS (
    SELECT lopnr, max(indatum) AS index_date
    FROM read_parquet('{data}/npr.parquet')
    WHERE regexp_matches(diagnos, '(^| )J44')
      AND indatum BETWEEN DATE '2018-01-01' AND DATE '2024-12-31'
    GROUP BY lopnr
),
cohort AS (
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad
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
      BETWEEN 12 * 40 AND 12 * 120 + 11
  AND (
      SELECT count(DISTINCT n.indatum) FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )J441( |$)')
        AND n.indatum BETWEEN c.index_date - INTERVAL 365 DAY AND c.index_date
  ) >= 2
  AND EXISTS (
      SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
      WHERE l.lopnr = c.lopnr AND l.atc LIKE 'R03%'
        AND l.edatum BETWEEN c.index_date - INTERVAL 365 DAY AND c.index_date
  )
