-- Rheumatoid arthritis, first advanced therapy after methotrexate (examples/ra_biologics.cohort):
-- final count and breakdown of the final cohort by `report by region, sex`, as antal returns them
-- (the attrition: ra_biologics.attrition.sql; the final count only: ra_biologics.final.sql).
WITH idx AS (  -- the first advanced therapy, dispensed (lmr) or given in care (rekvisition)
    SELECT lopnr, min(d) AS index_date
    FROM (
        SELECT lopnr, edatum AS d, atc FROM read_parquet('{data}/lmr.parquet')
        UNION ALL
        SELECT lopnr, adm_datum AS d, atc FROM read_parquet('{data}/rekvisition.parquet')
    )
    WHERE (atc LIKE 'L04AB%' OR atc IN ('L04AC03', 'L04AC07', 'L04AC14', 'L04AA29', 'L04AA37',
        'L04AA44', 'L04AA45', 'L04AF01', 'L04AF02', 'L04AF03', 'L04AF04', 'L01FA01', 'L01XC02',
        'L04AA24'))
      AND d BETWEEN DATE '2016-01-01' AND DATE '2025-06-30'
    GROUP BY lopnr
),
cohort AS (
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, p.lan, p.kon
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
)
SELECT c.lan AS region,
       CASE c.kon WHEN 1 THEN 'male' WHEN 2 THEN 'female' END AS sex,
       GROUPING(region, sex) AS total, count(*) AS n
FROM cohort c
WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
      BETWEEN 12 * 18 AND 12 * 120 + 11
  AND EXISTS (
      SELECT 1 FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )(M05|M06)')
        AND n.indatum <= c.index_date
  )
  AND EXISTS (
      SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
      WHERE l.lopnr = c.lopnr AND l.atc IN ('L04AX03', 'L01BA01')
        AND l.edatum < c.index_date
  )
  AND NOT (
      EXISTS (
          SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
          WHERE l.lopnr = c.lopnr AND (l.atc LIKE 'L04AB%' OR l.atc IN ('L04AC03', 'L04AC07', 'L04AC14', 'L04AA29', 'L04AA37',
              'L04AA44', 'L04AA45', 'L04AF01', 'L04AF02', 'L04AF03', 'L04AF04', 'L01FA01', 'L01XC02',
              'L04AA24'))
            AND l.edatum < c.index_date
      )
      OR EXISTS (
          SELECT 1 FROM read_parquet('{data}/rekvisition.parquet') r
          WHERE r.lopnr = c.lopnr AND (r.atc LIKE 'L04AB%' OR r.atc IN ('L04AC03', 'L04AC07', 'L04AC14', 'L04AA29', 'L04AA37',
              'L04AA44', 'L04AA45', 'L04AF01', 'L04AF02', 'L04AF03', 'L04AF04', 'L01FA01', 'L01XC02',
              'L04AA24'))
            AND r.adm_datum < c.index_date
      )
  )
GROUP BY GROUPING SETS ((), (region, sex))
