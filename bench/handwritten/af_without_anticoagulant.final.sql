-- Atrial fibrillation without anticoagulant (examples/af_without_anticoagulant.cohort): final count only.
WITH idx AS (
    SELECT lopnr, min(indatum) AS index_date
    FROM read_parquet('{data}/npr.parquet')
    WHERE regexp_matches(diagnos, '(^| )I48')
      AND indatum BETWEEN DATE '2016-01-01' AND DATE '2023-12-31'
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
      BETWEEN 12 * 65 AND 12 * 120 + 11
  AND NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
      WHERE l.lopnr = c.lopnr AND (l.atc = 'B01AA03' OR l.atc LIKE 'B01AF%')
        AND l.edatum BETWEEN c.index_date AND c.index_date + INTERVAL 365 DAY
  )
  AND NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
      WHERE l.lopnr = c.lopnr AND (l.atc = 'B01AA03' OR l.atc LIKE 'B01AF%')
        AND l.edatum < c.index_date
  )
