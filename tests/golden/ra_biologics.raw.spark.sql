WITH scan0 AS (
  SELECT
    `lopnr` AS lopnr,
    `edatum` AS d0,
    (
      `edatum` >= CAST('2016-01-01' AS DATE)
      AND `edatum` <= CAST('2025-06-30' AS DATE)
      AND (
        `atc` IN (
          'L01FA01',
          'L01XC02',
          'L04AA24',
          'L04AA29',
          'L04AA37',
          'L04AA44',
          'L04AA45',
          'L04AC03',
          'L04AC07',
          'L04AC14',
          'L04AF01',
          'L04AF02',
          'L04AF03',
          'L04AF04'
        )
        OR STARTSWITH(`atc`, 'L04AB')
      )
    ) AS f0,
    (
      `edatum` <= CAST('2025-06-29' AS DATE) AND `atc` IN ('L01BA01', 'L04AX03')
    ) AS f1,
    (
      `edatum` <= CAST('2025-06-29' AS DATE)
      AND (
        `atc` IN (
          'L01FA01',
          'L01XC02',
          'L04AA24',
          'L04AA29',
          'L04AA37',
          'L04AA44',
          'L04AA45',
          'L04AC03',
          'L04AC07',
          'L04AC14',
          'L04AF01',
          'L04AF02',
          'L04AF03',
          'L04AF04'
        )
        OR STARTSWITH(`atc`, 'L04AB')
      )
    ) AS f2
  FROM `lmr`
  WHERE
    NOT `edatum` IS NULL
    AND `edatum` <= CAST('2025-06-30' AS DATE)
    AND (
      `atc` IN (
        'L01BA01',
        'L01FA01',
        'L01XC02',
        'L04AA24',
        'L04AA29',
        'L04AA37',
        'L04AA44',
        'L04AA45',
        'L04AC03',
        'L04AC07',
        'L04AC14',
        'L04AF01',
        'L04AF02',
        'L04AF03',
        'L04AF04',
        'L04AX03'
      )
      OR STARTSWITH(`atc`, 'L04AB')
    )
), scan1 AS (
  SELECT
    `lopnr` AS lopnr,
    `adm_datum` AS d0,
    (
      `adm_datum` >= CAST('2016-01-01' AS DATE)
      AND `adm_datum` <= CAST('2025-06-30' AS DATE)
    ) AS f0,
    (
      `adm_datum` <= CAST('2025-06-29' AS DATE)
    ) AS f1
  FROM `rekvisition`
  WHERE
    NOT `adm_datum` IS NULL
    AND `adm_datum` <= CAST('2025-06-30' AS DATE)
    AND (
      `atc` IN (
        'L01FA01',
        'L01XC02',
        'L04AA24',
        'L04AA29',
        'L04AA37',
        'L04AA44',
        'L04AA45',
        'L04AC03',
        'L04AC07',
        'L04AC14',
        'L04AF01',
        'L04AF02',
        'L04AF03',
        'L04AF04'
      )
      OR STARTSWITH(`atc`, 'L04AB')
    )
), scan2 AS (
  SELECT
    *
  FROM (
    SELECT
      `lopnr` AS lopnr,
      `indatum` AS d0,
      (
        (
          (
            STARTSWITH(`diagnos`, 'M05')
            OR `diagnos` LIKE '% M05%'
            OR STARTSWITH(`diagnos`, 'M06')
            OR `diagnos` LIKE '% M06%'
          )
        )
      ) AS f0
    FROM `npr`
    WHERE
      NOT `indatum` IS NULL AND `indatum` <= CAST('2025-06-30' AS DATE)
  ) AS r
  WHERE
    `f0`
), ix AS (
  SELECT
    scan0.`lopnr` AS lopnr,
    scan0.`d0` AS d
  FROM scan0
  WHERE
    scan0.`f0`
  UNION ALL
  SELECT
    scan1.`lopnr` AS lopnr,
    scan1.`d0` AS d
  FROM scan1
  WHERE
    scan1.`f0`
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
    END AS fodelsemanad
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
    scan2.`lopnr` AS lopnr,
    scan2.`d0` AS d,
    0 AS atom
  FROM scan2
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan2.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan2.`f0` AND scan2.`d0` <= b.`_ix_date`
  UNION ALL
  SELECT
    scan0.`lopnr` AS lopnr,
    scan0.`d0` AS d,
    1 AS atom
  FROM scan0
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan0.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan0.`f1` AND scan0.`d0` <= DATE_ADD(b.`_ix_date`, -1)
  UNION ALL
  SELECT
    scan0.`lopnr` AS lopnr,
    scan0.`d0` AS d,
    2 AS atom
  FROM scan0
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan0.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan0.`f2` AND scan0.`d0` <= DATE_ADD(b.`_ix_date`, -1)
  UNION ALL
  SELECT
    scan1.`lopnr` AS lopnr,
    scan1.`d0` AS d,
    2 AS atom
  FROM scan1
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan1.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan1.`f1` AND scan1.`d0` <= DATE_ADD(b.`_ix_date`, -1)
), agg AS (
  SELECT
    ev.`lopnr`,
    COUNT(CASE WHEN ev.`atom` = 0 AND ev.`d` <= base.`index_date` THEN 1 END) AS c0,
    COUNT(CASE WHEN ev.`atom` = 1 AND ev.`d` <= DATE_ADD(base.`index_date`, -1) THEN 1 END) AS c1,
    COUNT(CASE WHEN ev.`atom` = 2 AND ev.`d` <= DATE_ADD(base.`index_date`, -1) THEN 1 END) AS c2
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
          ) BETWEEN 216 AND 1451,
          FALSE
        )
      )
      THEN 0
      WHEN NOT (
        COALESCE(agg.`c0`, 0) > 0
      )
      THEN 1
      WHEN NOT (
        COALESCE(agg.`c1`, 0) > 0
      )
      THEN 2
      WHEN NOT (
        NOT (
          COALESCE(agg.`c2`, 0) > 0
        )
      )
      THEN 3
      ELSE 4
    END AS reached,
    base.`lan` AS region,
    CASE WHEN base.`kon` = 1 THEN 'male' WHEN base.`kon` = 2 THEN 'female' END AS sex
  FROM base AS base
  LEFT JOIN agg AS agg
    ON agg.`lopnr` = base.`lopnr`
)
SELECT
  `region`,
  `sex`,
  GROUPING_ID(`region`, `sex`) AS grp,
  COUNT(CASE WHEN `reached` >= 0 THEN 1 END) AS n0,
  COUNT(CASE WHEN `reached` >= 1 THEN 1 END) AS n1,
  COUNT(CASE WHEN `reached` >= 2 THEN 1 END) AS n2,
  COUNT(CASE WHEN `reached` >= 3 THEN 1 END) AS n3,
  COUNT(CASE WHEN `reached` >= 4 THEN 1 END) AS n4
FROM persons
GROUP BY
  GROUPING SETS (
    (),
    (`region`, `sex`)
  )
