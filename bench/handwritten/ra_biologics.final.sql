-- Rheumatoid arthritis on biologics given in care (examples/ra_biologics.cohort): final count only.
WITH idx AS (
    SELECT lopnr, min(adm_datum) AS index_date
    FROM read_parquet('{data}/rekvisition.parquet')
    WHERE (atc LIKE 'L04AB%' OR atc IN ('L01FA01', 'L04AC07'))
      AND adm_datum BETWEEN DATE '2015-01-01' AND DATE '2025-06-30'
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
WHERE EXISTS (
      SELECT 1 FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )(M05|M06)')
        AND n.indatum <= c.index_date
  )
  AND EXISTS (
      SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
      WHERE l.lopnr = c.lopnr AND l.atc = 'L04AX03' AND l.edatum < c.index_date
  )
  AND 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
      BETWEEN 12 * 18 AND 12 * 100 + 11
