WITH scan0 AS (
  SELECT
    *
  FROM (
    SELECT
      `lopnr` AS lopnr,
      `dodsdat` AS d0,
      (
        (
          TRUE
        )
      ) AS f0
    FROM `dors`
    WHERE
      NOT `dodsdat` IS NULL AND `dodsdat` <= CAST('2024-12-31' AS DATE)
  ) AS r
  WHERE
    `f0`
), scan1 AS (
  SELECT
    *
  FROM (
    SELECT
      `lopnr` AS lopnr,
      `indatum` AS d0,
      (
        `indatum` <= CAST('2024-12-31' AS DATE)
        AND (
          (
            STARTSWITH(`diagnos`, 'J44') OR `diagnos` LIKE '% J44%'
          )
        )
      ) AS f0,
      (
        `indatum` >= CAST('2024-01-02' AS DATE)
        AND `indatum` <= CAST('2025-01-01' AS DATE)
        AND (
          (
            (
              `vardform` = 'S'
            ) AND (
              `hdia` IN ('J440', 'J441')
            )
          )
        )
      ) AS f1
    FROM `npr`
    WHERE
      NOT `indatum` IS NULL AND `indatum` <= CAST('2025-01-01' AS DATE)
  ) AS r
  WHERE
    (
      `f0` OR `f1`
    )
), scan2 AS (
  SELECT
    `lopnr` AS lopnr,
    `edatum` AS d0,
    (
      TRUE
    ) AS f0
  FROM `lmr`
  WHERE
    NOT `edatum` IS NULL
    AND `edatum` >= CAST('2024-01-02' AS DATE)
    AND `edatum` <= CAST('2025-01-01' AS DATE)
    AND (
      `atc` IN (
        'R03AC12',
        'R03AC13',
        'R03AC18',
        'R03AC19',
        'R03AL03',
        'R03AL04',
        'R03AL05',
        'R03AL06',
        'R03AL07',
        'R03AL08',
        'R03AL09',
        'R03AL11',
        'R03BB04',
        'R03BB05',
        'R03BB06',
        'R03BB07'
      )
      OR STARTSWITH(`atc`, 'R03AK')
      OR STARTSWITH(`atc`, 'R03BA')
    )
), base AS (
  SELECT
    p.`lopnr` AS lopnr,
    CAST('2025-01-01' AS DATE) AS index_date,
    CASE WHEN MIN(p.`kon`) = MAX(p.`kon`) THEN MIN(p.`kon`) END AS kon,
    CASE WHEN MIN(p.`lan`) = MAX(p.`lan`) THEN MIN(p.`lan`) END AS lan,
    CASE WHEN MIN(p.`fodelsear`) = MAX(p.`fodelsear`) THEN MIN(p.`fodelsear`) END AS fodelsear,
    CASE
      WHEN MIN(p.`fodelsemanad`) = MAX(p.`fodelsemanad`)
      THEN MIN(p.`fodelsemanad`)
    END AS fodelsemanad
  FROM `population` AS p
  LEFT JOIN (
    SELECT DISTINCT
      o.`lopnr`
    FROM `optout` AS o
    WHERE
      o.`andamal` IN ('forskning', 'alla')
  ) AS oo
    ON oo.`lopnr` = p.`lopnr`
  WHERE
    (
      NOT p.`lopnr` IS NULL
      AND NOT EXISTS(
        SELECT
          1
        FROM scan0 AS x
        WHERE
          x.`f0` AND x.`lopnr` = p.`lopnr`
      )
    )
    AND oo.`lopnr` IS NULL
  GROUP BY
    p.`lopnr`
  HAVING
    12 * CAST(CASE WHEN MIN(p.`fodelsear`) = MAX(p.`fodelsear`) THEN MIN(p.`fodelsear`) END AS BIGINT) + CAST(CASE
      WHEN MIN(p.`fodelsemanad`) = MAX(p.`fodelsemanad`)
      THEN MIN(p.`fodelsemanad`)
    END AS BIGINT) <= 24301
), ev AS (
  SELECT
    scan1.`lopnr` AS lopnr,
    scan1.`d0` AS d,
    0 AS atom
  FROM scan1
  WHERE
    scan1.`f0`
  UNION ALL
  SELECT
    scan1.`lopnr` AS lopnr,
    scan1.`d0` AS d,
    1 AS atom
  FROM scan1
  WHERE
    scan1.`f1`
  UNION ALL
  SELECT
    scan2.`lopnr` AS lopnr,
    scan2.`d0` AS d,
    2 AS atom
  FROM scan2
  WHERE
    scan2.`f0`
), agg AS (
  SELECT
    ev.`lopnr`,
    COUNT(CASE WHEN ev.`atom` = 0 AND ev.`d` <= DATE_ADD(base.`index_date`, -1) THEN 1 END) AS c0,
    COUNT(
      DISTINCT CASE
        WHEN ev.`atom` = 1
        AND ev.`d` >= DATE_ADD(base.`index_date`, -365)
        AND ev.`d` <= base.`index_date`
        THEN ev.`d`
      END
    ) AS c1,
    COUNT(
      CASE
        WHEN ev.`atom` = 2
        AND ev.`d` >= DATE_ADD(base.`index_date`, -365)
        AND ev.`d` <= base.`index_date`
        THEN 1
      END
    ) AS c2
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
          ) BETWEEN 480 AND 1451,
          FALSE
        )
      )
      THEN 0
      WHEN NOT (
        COALESCE(agg.`c0`, 0) > 0
      )
      THEN 1
      WHEN NOT (
        COALESCE(agg.`c1`, 0) >= 2
      )
      THEN 2
      WHEN NOT (
        COALESCE(agg.`c2`, 0) > 0
      )
      THEN 3
      ELSE 4
    END AS reached,
    base.`lan` AS region
  FROM base AS base
  LEFT JOIN agg AS agg
    ON agg.`lopnr` = base.`lopnr`
)
SELECT
  `region`,
  GROUPING(`region`) AS grp,
  COUNT(CASE WHEN `reached` >= 0 THEN 1 END) AS n0,
  COUNT(CASE WHEN `reached` >= 1 THEN 1 END) AS n1,
  COUNT(CASE WHEN `reached` >= 2 THEN 1 END) AS n2,
  COUNT(CASE WHEN `reached` >= 3 THEN 1 END) AS n3,
  COUNT(CASE WHEN `reached` >= 4 THEN 1 END) AS n4
FROM persons
GROUP BY
  GROUPING SETS (
    (),
    (`region`)
  )
