"""Pass cloud costs through to hosted communities and invoice them.

The pipeline, each stage a plain function over immutable records (see ``billing.records``):

    config --load--> Config
    sources --collect--> CostRow --attribute--> Attributed --reconcile--> (balanced, or stop)
                                                Attributed --allocate--> Share (shared pools)
                                   Attributed + Share --price--> Invoice --render--> PDFs and CSVs

``billing.run.run_month`` strings the stages together; ``billing.cli`` is a thin skin over it.
"""

__version__ = "0.1.0"
