WITH scan0 AS (
  SELECT
    *
  FROM (
    SELECT
      `lopnr` AS lopnr,
      `diagnosdatum` AS d0,
      (
        (
          (
            (
              `her2` = 'positiv'
            ) AND (
              `stadium` IN ('II', 'III')
            )
          )
        )
      ) AS f0
    FROM `nkbc`
    WHERE
      NOT `diagnosdatum` IS NULL
      AND `diagnosdatum` >= CAST('2015-01-01' AS DATE)
      AND `diagnosdatum` <= CAST('2024-12-31' AS DATE)
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
        (
          (
            STARTSWITH(`op`, 'HAB')
            OR `op` LIKE '% HAB%'
            OR STARTSWITH(`op`, 'HAC')
            OR `op` LIKE '% HAC%'
          )
        )
      ) AS f0
    FROM `npr`
    WHERE
      NOT `indatum` IS NULL
      AND `indatum` >= CAST('2015-01-01' AS DATE)
      AND `indatum` <= CAST('2025-12-31' AS DATE)
  ) AS r
  WHERE
    `f0`
), scan2 AS (
  SELECT
    *
  FROM (
    SELECT
      `lopnr` AS lopnr,
      `provdatum` AS d0,
      (
        (
          `provtyp` IN ('vavnad_ffpe', 'vavnad_frusen')
        )
      ) AS f0
    FROM `biobank`
    WHERE
      NOT `provdatum` IS NULL AND `provdatum` >= CAST('2015-01-01' AS DATE)
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
    scan1.`lopnr` AS lopnr,
    scan1.`d0` AS d,
    0 AS atom
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
    AND scan1.`d0` >= b.`_ix_date`
    AND scan1.`d0` <= DATE_ADD(b.`_ix_date`, 365)
  UNION ALL
  SELECT
    scan2.`lopnr` AS lopnr,
    scan2.`d0` AS d,
    1 AS atom
  FROM scan2
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan2.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan2.`f0` AND scan2.`d0` >= b.`_ix_date`
), agg AS (
  SELECT
    ev.`lopnr`,
    COUNT(
      CASE
        WHEN ev.`atom` = 0
        AND ev.`d` >= base.`index_date`
        AND ev.`d` <= DATE_ADD(base.`index_date`, 365)
        THEN 1
      END
    ) AS c0,
    COUNT(CASE WHEN ev.`atom` = 1 AND ev.`d` >= base.`index_date` THEN 1 END) AS c1
  FROM ev AS ev
  JOIN base AS base
    ON ev.`lopnr` = base.`lopnr`
  GROUP BY
    ev.`lopnr`
), persons AS (
  SELECT
    CASE
      WHEN NOT (
        COALESCE(base.`kon` = 2, FALSE)
      )
      THEN 0
      WHEN NOT (
        COALESCE(
          (
            (
              12 * YEAR(base.`index_date`) + MONTH(base.`index_date`)
            ) - (
              12 * CAST(base.`fodelsear` AS BIGINT) + CAST(base.`fodelsemanad` AS BIGINT)
            )
          ) BETWEEN 216 AND 971,
          FALSE
        )
      )
      THEN 1
      WHEN NOT (
        COALESCE(agg.`c0`, 0) > 0
      )
      THEN 2
      WHEN NOT (
        COALESCE(agg.`c1`, 0) > 0
      )
      THEN 3
      ELSE 4
    END AS reached,
    base.`lan` AS region,
    CAST(FLOOR(
      (
        (
          12 * YEAR(base.`index_date`) + MONTH(base.`index_date`)
        ) - (
          12 * CAST(base.`fodelsear` AS BIGINT) + CAST(base.`fodelsemanad` AS BIGINT)
        )
      ) / 120.0
    ) AS INT) * 10 AS age_10
  FROM base AS base
  LEFT JOIN agg AS agg
    ON agg.`lopnr` = base.`lopnr`
)
SELECT
  `region`,
  `age_10`,
  GROUPING_ID(`region`, `age_10`) AS grp,
  COUNT(CASE WHEN `reached` >= 0 THEN 1 END) AS n0,
  COUNT(CASE WHEN `reached` >= 1 THEN 1 END) AS n1,
  COUNT(CASE WHEN `reached` >= 2 THEN 1 END) AS n2,
  COUNT(CASE WHEN `reached` >= 3 THEN 1 END) AS n3,
  COUNT(CASE WHEN `reached` >= 4 THEN 1 END) AS n4
FROM persons
GROUP BY
  GROUPING SETS (
    (),
    (`region`, `age_10`)
  )
