WITH scan0 AS (
  SELECT
    *
  FROM (
    SELECT
      `lopnr` AS lopnr,
      `indatum` AS d0,
      `sjukhus` AS site,
      `mvo` AS clinic,
      (
        `indatum` >= CAST('2023-01-01' AS DATE)
        AND `indatum` <= CAST('2024-12-31' AS DATE)
        AND (
          (
            (
              `vardform` = 'S'
            ) AND (
              `hdia` IN ('I50', 'I500', 'I501', 'I509')
            )
          )
        )
      ) AS f0,
      (
        (
          (
            STARTSWITH(`diagnos`, 'E10') OR `diagnos` LIKE '% E10%'
          )
        )
      ) AS f1
    FROM `npr`
    WHERE
      NOT `indatum` IS NULL
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
    AND `edatum` >= CAST('2022-07-05' AS DATE)
    AND `edatum` <= CAST('2024-12-31' AS DATE)
    AND (
      `atc` IN (
        'A10BD15',
        'A10BD16',
        'A10BD19',
        'A10BD20',
        'A10BD21',
        'A10BD23',
        'A10BD24',
        'A10BD25',
        'A10BD27'
      )
      OR STARTSWITH(`atc`, 'A10BK')
    )
), ix AS (
  SELECT
    scan0.`lopnr` AS lopnr,
    scan0.`d0` AS d,
    scan0.`site` AS site,
    scan0.`clinic` AS clinic
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
), isite AS (
  SELECT
    ix.`lopnr`,
    MIN(ix.`site`) AS site,
    MIN(ix.`clinic`) AS clinic
  FROM ix
  JOIN idx
    ON ix.`lopnr` = idx.`lopnr` AND ix.`d` = idx.`index_date`
  GROUP BY
    ix.`lopnr`
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
    AND scan1.`d0` >= DATE_ADD(b.`_ix_date`, -180)
    AND scan1.`d0` <= b.`_ix_date`
  UNION ALL
  SELECT
    scan0.`lopnr` AS lopnr,
    scan0.`d0` AS d,
    1 AS atom
  FROM scan0
  WHERE
    scan0.`f1` AND `lopnr` IN (
      SELECT
        `lopnr`
      FROM base
    )
), agg AS (
  SELECT
    ev.`lopnr`,
    COUNT(
      CASE
        WHEN ev.`atom` = 0
        AND ev.`d` >= DATE_ADD(base.`index_date`, -180)
        AND ev.`d` <= base.`index_date`
        THEN 1
      END
    ) AS c0,
    COUNT(CASE WHEN ev.`atom` = 1 THEN 1 END) AS c1
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
    isite.`site` AS hospital
  FROM base AS base
  LEFT JOIN isite
    ON isite.`lopnr` = base.`lopnr`
  LEFT JOIN agg AS agg
    ON agg.`lopnr` = base.`lopnr`
)
SELECT
  `hospital`,
  GROUPING(`hospital`) AS grp,
  COUNT(CASE WHEN `reached` >= 0 THEN 1 END) AS n0,
  COUNT(CASE WHEN `reached` >= 1 THEN 1 END) AS n1,
  COUNT(CASE WHEN `reached` >= 2 THEN 1 END) AS n2,
  COUNT(CASE WHEN `reached` >= 3 THEN 1 END) AS n3
FROM persons
GROUP BY
  GROUPING SETS (
    (),
    (`hospital`)
  )
