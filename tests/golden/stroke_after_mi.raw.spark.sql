WITH scan0 AS (
  SELECT
    *
  FROM (
    SELECT
      `lopnr` AS lopnr,
      `indatum` AS d0,
      (
        `indatum` >= CAST('2011-01-01' AS DATE)
        AND `indatum` <= CAST('2024-11-30' AS DATE)
        AND (
          (
            STARTSWITH(`diagnos`, 'I21')
            OR `diagnos` LIKE '% I21%'
            OR STARTSWITH(`diagnos`, 'I22')
            OR `diagnos` LIKE '% I22%'
          )
        )
      ) AS f0,
      (
        `indatum` >= CAST('2006-01-02' AS DATE)
        AND `indatum` <= CAST('2024-11-29' AS DATE)
        AND (
          (
            STARTSWITH(`diagnos`, 'I21')
            OR `diagnos` LIKE '% I21%'
            OR STARTSWITH(`diagnos`, 'I22')
            OR `diagnos` LIKE '% I22%'
          )
        )
      ) AS f1,
      (
        `indatum` >= CAST('2011-01-01' AS DATE)
        AND `indatum` <= CAST('2024-12-30' AS DATE)
        AND (
          (
            STARTSWITH(`diagnos`, 'I63')
            OR `diagnos` LIKE '% I63%'
            OR STARTSWITH(`diagnos`, 'I64')
            OR `diagnos` LIKE '% I64%'
          )
        )
      ) AS f2
    FROM `npr`
    WHERE
      NOT `indatum` IS NULL
      AND `indatum` >= CAST('2006-01-02' AS DATE)
      AND `indatum` <= CAST('2024-12-30' AS DATE)
  ) AS r
  WHERE
    (
      `f0` OR `f1` OR `f2`
    )
), scan1 AS (
  SELECT
    `lopnr` AS lopnr,
    `dodsdat` AS d0,
    (
      TRUE
    ) AS f0
  FROM `dors`
  WHERE
    NOT `dodsdat` IS NULL
    AND `dodsdat` >= CAST('2011-01-01' AS DATE)
    AND `dodsdat` <= CAST('2024-12-30' AS DATE)
    AND (
      STARTSWITH(`ulorsak`, 'I63') OR STARTSWITH(`ulorsak`, 'I64')
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
    scan0.`f2`
    AND scan0.`d0` >= b.`_ix_date`
    AND scan0.`d0` <= DATE_ADD(b.`_ix_date`, 30)
  UNION ALL
  SELECT
    scan1.`lopnr` AS lopnr,
    scan1.`d0` AS d,
    3 AS atom
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
    AND scan1.`d0` <= DATE_ADD(b.`_ix_date`, 30)
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
    COUNT(CASE WHEN ev.`atom` = 1 AND ev.`d` <= DATE_ADD(base.`index_date`, -1) THEN 1 END) AS c1,
    COUNT(
      CASE
        WHEN ev.`atom` = 2
        AND ev.`d` >= base.`index_date`
        AND ev.`d` <= DATE_ADD(base.`index_date`, 30)
        THEN 1
      END
    ) AS c2,
    COUNT(
      CASE
        WHEN ev.`atom` = 3
        AND ev.`d` >= base.`index_date`
        AND ev.`d` <= DATE_ADD(base.`index_date`, 30)
        THEN 1
      END
    ) AS c3
  FROM ev AS ev
  JOIN base AS base
    ON ev.`lopnr` = base.`lopnr`
  GROUP BY
    ev.`lopnr`
), persons AS (
  SELECT
    CASE
      WHEN NOT (
        NOT (
          COALESCE(agg.`c0`, 0) > 0
        )
      )
      THEN 0
      WHEN NOT (
        NOT (
          COALESCE(agg.`c1`, 0) > 0
        )
      )
      THEN 1
      WHEN NOT (
        (
          (
            COALESCE(agg.`c2`, 0) > 0
          ) OR (
            COALESCE(agg.`c3`, 0) > 0
          )
        )
      )
      THEN 2
      ELSE 3
    END AS reached,
    YEAR(base.`index_date`) AS year
  FROM base AS base
  LEFT JOIN agg AS agg
    ON agg.`lopnr` = base.`lopnr`
)
SELECT
  `year`,
  GROUPING(`year`) AS grp,
  COUNT(CASE WHEN `reached` >= 0 THEN 1 END) AS n0,
  COUNT(CASE WHEN `reached` >= 1 THEN 1 END) AS n1,
  COUNT(CASE WHEN `reached` >= 2 THEN 1 END) AS n2,
  COUNT(CASE WHEN `reached` >= 3 THEN 1 END) AS n3
FROM persons
GROUP BY
  GROUPING SETS (
    (),
    (`year`)
  )
