"""The configuration file: typed models, and a loader that names every problem and its place.

A typo must never silently drop a cost, so unknown keys, duplicate keys and references to
communities that do not exist are all errors. YAML numbers with a fraction are read as
``Decimal`` (never float), so ``amount: 1000.10`` means exactly 1000.10.

Relative paths in the file (sources, output) are relative to the file itself.

The package follows the file's sections: ``fields`` (value types and bounds), ``terms``
(organisation, communities, contracts), ``rules`` (attribution and shared pools), ``sources``,
``model`` (the whole file) and ``loader`` (YAML to a validated ``Config``).
"""

from .fields import (EXPORT_TABLE, GCP_PROJECT, MAX_EXCHANGE_RATE, MAX_MONEY, MAX_PERCENT, MAX_QUANTITY,
                     MAX_YAML_DEPTH, MAX_YAML_VALUES, Count, Currency, Id, Money, MonthText, Percent, Quantity,
                     Rate, Values)
from .loader import DEFAULT_CONFIG, Location, format_location, load_config
from .model import Config, LedgerSettings
from .rules import Match, Rule, SharedPool
from .sources import (SOURCE_TYPES, AwsCostExplorer, AwsCostExplorerFiles, AwsDataExports, AwsGroupBy,
                      FocusFiles, GcpBigQuery, GcpExportFiles, Source, source_providers)
from .terms import (CloudTerms, Community, Contact, Contract, Discount, ExchangeRate, Fee, FlatFee,
                    InvoiceSettings, Organisation, PercentFee, Prepaid, Tax, Tier, TieredFee)

__all__ = [
    "AwsCostExplorer", "AwsCostExplorerFiles", "AwsDataExports", "AwsGroupBy", "CloudTerms", "Community", "Config",
    "Contact", "Contract", "Count", "Currency", "DEFAULT_CONFIG", "Discount", "EXPORT_TABLE",
    "ExchangeRate", "Fee", "FlatFee", "FocusFiles", "GCP_PROJECT", "GcpBigQuery", "GcpExportFiles", "Id",
    "InvoiceSettings", "LedgerSettings", "Location", "MAX_EXCHANGE_RATE", "MAX_MONEY",
    "MAX_PERCENT", "MAX_QUANTITY", "MAX_YAML_DEPTH", "MAX_YAML_VALUES", "Match", "Money",
    "MonthText", "Organisation", "Percent", "PercentFee", "Prepaid", "Quantity", "Rate", "Rule",
    "SOURCE_TYPES", "SharedPool", "Source", "Tax", "Tier", "TieredFee", "Values", "format_location",
    "load_config", "source_providers",
]
