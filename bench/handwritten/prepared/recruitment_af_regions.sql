-- Newly diagnosed AF, 65+, no anticoagulant: per healthcare region and quarter (examples/recruitment_af_regions.cohort):
-- final count and breakdown of the final cohort by the first table, `report by sjukvardsregion`
-- (the healthcare region of residence, catalog/regions.yaml: the län's, and in Hallands län the
-- kommun's: Hylte 1315, Halmstad 1380 and Laholm 1381 in Södra, the others in Västra, unknown
-- without a kommun), as antal returns it (the same on the raw Parquet files:
-- ../recruitment_af_regions.sql).
-- On the prepared layout (antal prepare; run on a connection to the prepared file): tables by
-- name, code tables "<register>#<column>" with one code per row sorted by code (a code set
-- also as one BETWEEN range, for the zone maps); staged as in the raw-Parquet query.
WITH af AS MATERIALIZED (  -- contacts with an I48* diagnosis, from 1825 days before the earliest
                           -- possible index (2016-01-01) on: the index events and the look-back's
    SELECT lopnr, indatum
    FROM "npr#diagnos"
    WHERE (diagnos LIKE 'I48%')
      AND indatum BETWEEN DATE '2011-01-02' AND DATE '2025-09-30'
),
idx AS (  -- the first one in the index window
    SELECT lopnr, min(indatum) AS index_date
    FROM af
    WHERE indatum >= DATE '2016-01-01'
    GROUP BY lopnr
),
s0 AS (  -- in the population register, not opted out of research
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, p.lan, p.kommun
    FROM idx i
    JOIN population p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM optout o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
),
s1 AS (  -- aged 65 or older
    SELECT * FROM s0 c
    WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
          BETWEEN 12 * 65 AND 12 * 120 + 11
),
s2 AS (  -- no AF contact 1..1825 days before
    SELECT * FROM s1 c WHERE NOT EXISTS (
        SELECT 1 FROM af a
        WHERE a.lopnr = c.lopnr AND a.indatum BETWEEN c.index_date - 1825 AND c.index_date - 1
    )
),
s3 AS (  -- no oral anticoagulant dispensed 1..365 days before
    SELECT * FROM s2 c WHERE NOT EXISTS (
        SELECT 1 FROM "lmr#atc" l
        WHERE l.lopnr = c.lopnr AND l.atc BETWEEN 'B01AA03' AND 'B01AF~'
          AND (l.atc IN ('B01AA03', 'B01AE07') OR l.atc LIKE 'B01AF%')
          AND l.edatum BETWEEN c.index_date - 365 AND c.index_date - 1
    )
)
SELECT CASE
           WHEN c.lan = '13' THEN CASE WHEN c.kommun IN ('1315', '1380', '1381') THEN 'syd'
                                       WHEN c.kommun IS NOT NULL THEN 'vast' END
           WHEN c.lan IN ('22', '23', '24', '25') THEN 'norr'
           WHEN c.lan IN ('03', '04', '17', '18', '19', '20', '21') THEN 'mellersta'
           WHEN c.lan IN ('01', '09') THEN 'stockholm-gotland'
           WHEN c.lan IN ('05', '06', '08') THEN 'sydost'
           WHEN c.lan = '14' THEN 'vast'
           WHEN c.lan IN ('07', '10', '12') THEN 'syd'
       END AS sjukvardsregion,
       GROUPING(sjukvardsregion) AS total, count(*) AS n
FROM s3 c
GROUP BY GROUPING SETS ((), (sjukvardsregion))
