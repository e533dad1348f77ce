-- COPD with two exacerbation admissions in the past year, 1 January 2025 (examples/copd_exacerbations.cohort): final count only.
WITH cohort AS (  -- born in or before the index month, alive on 2025-01-01, not opted out
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
)
SELECT count(*) AS n
FROM cohort c
WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
      BETWEEN 12 * 40 AND 12 * 120 + 11
  AND EXISTS (
      SELECT 1 FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )J44')
        AND n.indatum < c.index_date
  )
  AND (
      SELECT count(DISTINCT n.indatum) FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND n.vardform = 'S' AND n.hdia = 'J441'
        AND n.indatum BETWEEN c.index_date - INTERVAL 365 DAY AND c.index_date
  ) >= 2
  AND EXISTS (
      SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
      WHERE l.lopnr = c.lopnr AND (l.atc IN ('R03AC12', 'R03AC13', 'R03AC18', 'R03AC19')
             OR l.atc LIKE 'R03AK%' OR l.atc LIKE 'R03AL%' OR l.atc LIKE 'R03BA%'
             OR l.atc LIKE 'R03BB%')
        AND l.edatum BETWEEN c.index_date - INTERVAL 365 DAY AND c.index_date - INTERVAL 0 DAY
  )
