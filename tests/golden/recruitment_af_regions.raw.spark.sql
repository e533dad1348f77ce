WITH scan0 AS (
  SELECT
    *
  FROM (
    SELECT
      `lopnr` AS lopnr,
      `indatum` AS d0,
      (
        `indatum` >= CAST('2016-01-01' AS DATE)
        AND `indatum` <= CAST('2025-09-30' AS DATE)
        AND (
          (
            STARTSWITH(`diagnos`, 'I48') OR `diagnos` LIKE '% I48%'
          )
        )
      ) AS f0,
      (
        `indatum` >= CAST('2011-01-02' AS DATE)
        AND `indatum` <= CAST('2025-09-29' AS DATE)
        AND (
          (
            STARTSWITH(`diagnos`, 'I48') OR `diagnos` LIKE '% I48%'
          )
        )
      ) AS f1
    FROM `npr`
    WHERE
      NOT `indatum` IS NULL
      AND `indatum` >= CAST('2011-01-02' AS DATE)
      AND `indatum` <= CAST('2025-09-30' AS DATE)
  ) AS r
  WHERE
    (
      `f0` OR `f1`
    )
), scan1 AS (
  SELECT
    `lopnr` AS lopnr,
    `edatum` AS d0,
    (
      TRUE
    ) AS f0
  FROM `lmr`
  WHERE
    NOT `edatum` IS NULL
    AND `edatum` >= CAST('2015-01-01' AS DATE)
    AND `edatum` <= CAST('2025-09-29' AS DATE)
    AND (
      `atc` IN ('B01AA03', 'B01AE07') OR STARTSWITH(`atc`, 'B01AF')
    )
), ix AS (
  SELECT
    scan0.`lopnr` AS lopnr,
    scan0.`d0` AS d
  FROM scan0
  WHERE
    scan0.`f0`
), idx AS (
  SELECT
    `lopnr`,
    MIN(`d`) AS index_date
  FROM ix
  GROUP BY
    `lopnr`
), base AS (
  SELECT
    p.`lopnr` AS lopnr,
    i.`index_date`,
    CASE WHEN MIN(p.`kon`) = MAX(p.`kon`) THEN MIN(p.`kon`) END AS kon,
    CASE WHEN MIN(p.`lan`) = MAX(p.`lan`) THEN MIN(p.`lan`) END AS lan,
    CASE WHEN MIN(p.`fodelsear`) = MAX(p.`fodelsear`) THEN MIN(p.`fodelsear`) END AS fodelsear,
    CASE
      WHEN MIN(p.`fodelsemanad`) = MAX(p.`fodelsemanad`)
      THEN MIN(p.`fodelsemanad`)
    END AS fodelsemanad,
    CASE WHEN MIN(p.`kommun`) = MAX(p.`kommun`) THEN MIN(p.`kommun`) END AS kommun
  FROM `population` AS p
  JOIN idx AS i
    ON p.`lopnr` = i.`lopnr`
  LEFT JOIN (
    SELECT DISTINCT
      o.`lopnr`
    FROM `optout` AS o
    WHERE
      o.`andamal` IN ('forskning', 'alla')
  ) AS oo
    ON oo.`lopnr` = p.`lopnr`
  WHERE
    oo.`lopnr` IS NULL
  GROUP BY
    p.`lopnr`,
    i.`index_date`
), ev AS (
  SELECT
    scan0.`lopnr` AS lopnr,
    scan0.`d0` AS d,
    0 AS atom
  FROM scan0
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan0.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan0.`f1`
    AND scan0.`d0` >= DATE_ADD(b.`_ix_date`, -1825)
    AND scan0.`d0` <= DATE_ADD(b.`_ix_date`, -1)
  UNION ALL
  SELECT
    scan1.`lopnr` AS lopnr,
    scan1.`d0` AS d,
    1 AS atom
  FROM scan1
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan1.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan1.`f0`
    AND scan1.`d0` >= DATE_ADD(b.`_ix_date`, -365)
    AND scan1.`d0` <= DATE_ADD(b.`_ix_date`, -1)
), agg AS (
  SELECT
    ev.`lopnr`,
    COUNT(
      CASE
        WHEN ev.`atom` = 0
        AND ev.`d` >= DATE_ADD(base.`index_date`, -1825)
        AND ev.`d` <= DATE_ADD(base.`index_date`, -1)
        THEN 1
      END
    ) AS c0,
    COUNT(
      CASE
        WHEN ev.`atom` = 1
        AND ev.`d` >= DATE_ADD(base.`index_date`, -365)
        AND ev.`d` <= DATE_ADD(base.`index_date`, -1)
        THEN 1
      END
    ) AS c1
  FROM ev AS ev
  JOIN base AS base
    ON ev.`lopnr` = base.`lopnr`
  GROUP BY
    ev.`lopnr`
), persons AS (
  SELECT
    CASE
      WHEN NOT (
        COALESCE(
          (
            (
              12 * YEAR(base.`index_date`) + MONTH(base.`index_date`)
            ) - (
              12 * CAST(base.`fodelsear` AS BIGINT) + CAST(base.`fodelsemanad` AS BIGINT)
            )
          ) BETWEEN 780 AND 1451,
          FALSE
        )
      )
      THEN 0
      WHEN NOT (
        NOT (
          COALESCE(agg.`c0`, 0) > 0
        )
      )
      THEN 1
      WHEN NOT (
        NOT (
          COALESCE(agg.`c1`, 0) > 0
        )
      )
      THEN 2
      ELSE 3
    END AS reached,
    CASE
      WHEN base.`lan` = '13' AND base.`kommun` IS NULL
      THEN CAST(NULL AS STRING)
      WHEN base.`lan` = '13' AND base.`kommun` IN ('1315', '1380', '1381')
      THEN 'syd'
      WHEN base.`lan` IN ('22', '23', '24', '25')
      THEN 'norr'
      WHEN base.`lan` IN ('03', '04', '17', '18', '19', '20', '21')
      THEN 'mellersta'
      WHEN base.`lan` IN ('01', '09')
      THEN 'stockholm-gotland'
      WHEN base.`lan` IN ('05', '06', '08')
      THEN 'sydost'
      WHEN base.`lan` IN ('13', '14')
      THEN 'vast'
      WHEN base.`lan` IN ('07', '10', '12')
      THEN 'syd'
    END AS sjukvardsregion,
    YEAR(base.`index_date`) * 10 + CASE
      WHEN MONTH(base.`index_date`) <= 3
      THEN 1
      WHEN MONTH(base.`index_date`) <= 6
      THEN 2
      WHEN MONTH(base.`index_date`) <= 9
      THEN 3
      ELSE 4
    END AS quarter
  FROM base AS base
  LEFT JOIN agg AS agg
    ON agg.`lopnr` = base.`lopnr`
)
SELECT
  `sjukvardsregion`,
  `quarter`,
  GROUPING_ID(`sjukvardsregion`, `quarter`) AS grp,
  COUNT(CASE WHEN `reached` >= 0 THEN 1 END) AS n0,
  COUNT(CASE WHEN `reached` >= 1 THEN 1 END) AS n1,
  COUNT(CASE WHEN `reached` >= 2 THEN 1 END) AS n2,
  COUNT(CASE WHEN `reached` >= 3 THEN 1 END) AS n3
FROM persons
GROUP BY
  GROUPING SETS (
    (),
    (`sjukvardsregion`),
    (`quarter`)
  )
