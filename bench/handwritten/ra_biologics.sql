-- Rheumatoid arthritis on biologics given in care (examples/ra_biologics.cohort):
-- final count and breakdown of the final cohort by `report by hospital, sex`, as antal returns them
-- (the attrition: ra_biologics.attrition.sql; the final count only: ra_biologics.final.sql).
WITH ix AS (  -- the index events
    SELECT lopnr, adm_datum, sjukhus
    FROM read_parquet('{data}/rekvisition.parquet')
    WHERE (atc LIKE 'L04AB%' OR atc IN ('L01FA01', 'L04AC07'))
      AND adm_datum BETWEEN DATE '2015-01-01' AND DATE '2025-06-30'
),
idx AS (  -- the first one; hospital: the smallest sjukhus among the index events that day
    SELECT ix.lopnr, f.index_date, min(ix.sjukhus) AS hospital
    FROM (SELECT lopnr, min(adm_datum) AS index_date FROM ix GROUP BY lopnr) f
    JOIN ix ON ix.lopnr = f.lopnr AND ix.adm_datum = f.index_date
    GROUP BY ix.lopnr, f.index_date
),
cohort AS (
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, i.hospital, p.kon
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
)
SELECT c.hospital,
       CASE c.kon WHEN 1 THEN 'male' WHEN 2 THEN 'female' END AS sex,
       GROUPING(hospital, sex) AS total, count(*) AS n
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
GROUP BY GROUPING SETS ((), (hospital, sex))
