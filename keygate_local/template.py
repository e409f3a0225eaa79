"""The template's resources without CloudFormation: read template.yaml, create the keys table and the
pepper secret it defines (on moto or any AWS endpoint), and give each function its environment and
handler exactly as the template wires them. Tests, the demo and the local stack all use this, so a
wrong wiring in the template fails them too.
"""

import importlib
import json
import re
import secrets
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"
HANDLER_PACKAGES = ("keygate", "authorizer", "admin", "demo", "leak_report", "audit_copy", "replica_flush")
_TABLE_PROPERTIES = {
    "AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes", "SSESpecification",
    "TimeToLiveSpecification", "PointInTimeRecoverySpecification", "DeletionProtectionEnabled", "StreamSpecification",
}  # fmt: skip


NO_VALUE = None  # what Ref AWS::NoValue resolves to: the property is left out
_NO_VALUE_REF = {"Ref": "AWS::NoValue"}
_SAM_ALIAS = ".Alias"  # SAM's reference to the alias AutoPublishAlias makes: Ref Function.Alias
LOCAL_ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-1"  # the local stack's region
NO_SUCH_OPERATION = "UnknownOperationException"  # an endpoint's answer to an operation it does not have


def load_template(path: Path = TEMPLATE_PATH) -> dict:
    return yaml_parse(path.read_text())


class UnsupportedCondition(ValueError):
    """A template condition this stack cannot evaluate: it refuses to guess which resources exist."""


class InvalidParameter(ValueError):
    """A parameter value CloudFormation would refuse (AllowedValues, AllowedPattern, MinValue, MaxValue)."""


CONDITION_FUNCTIONS = ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition")


class Stack:
    """One instance of the template, as CloudFormation would deploy it with these parameter values: the
    resources and outputs whose Condition is false are left out, as if the template never had them, and
    each Fn::If is decided. It also holds the physical ids of what the local stack creates."""

    def __init__(
        self,
        template: dict,
        parameters: dict[str, Any] | None = None,
        name: str = "keygate-local",
        region: str = REGION,
    ):
        self.template = template
        self.name = name
        self.region = region
        self.physical_ids: dict[str, str] = {}
        self.arns: dict[str, str] = {}
        self.stream_arns: dict[str, str] = {}  # table logical id -> its stream's ARN
        self.parameters = {key: spec.get("Default") for key, spec in template.get("Parameters", {}).items()}
        unknown = set(parameters or {}) - set(self.parameters)
        if unknown:
            raise KeyError(f"template has no parameters {sorted(unknown)}")
        self.parameters.update(parameters or {})
        for key, spec in template.get("Parameters", {}).items():
            _check_parameter(key, spec, self.parameters[key])
        self._check_rules()
        self.template = self._as_deployed(template)
        for logical_id in self.functions():  # served by their logical ids (the local Lambda Invoke API)
            self.arns[logical_id] = f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:{logical_id}"
        for logical_id, spec in template["Resources"].items():
            if spec["Type"] == "AWS::IAM::Role":
                path = self.resolve(spec.get("Properties", {}).get("Path", "/")) or "/"  # NoValue: the default
                self.arns[logical_id] = f"arn:aws:iam::{LOCAL_ACCOUNT}:role{path}{logical_id}"

    def _check_rules(self) -> None:
        """The template's Rules, as CloudFormation checks them before it changes anything: a parameter
        combination an assertion refuses raises InvalidParameter with the assertion's description."""
        for name, rule in self.template.get("Rules", {}).items():
            if "RuleCondition" in rule and not self._truth(name, rule["RuleCondition"]):
                continue
            for assertion in rule["Assertions"]:
                if not self._truth(name, assertion["Assert"]):
                    raise InvalidParameter(f"rule {name}: {assertion.get('AssertDescription', 'refused')}")

    def resource(self, logical_id: str) -> dict:
        if logical_id not in self.template["Resources"]:
            raise KeyError(f"{logical_id} is not in this stack (not in the template, or its Condition is false)")
        return self.template["Resources"][logical_id]

    def functions(self) -> list[str]:
        return [key for key, spec in self.template["Resources"].items() if spec["Type"] == "AWS::Serverless::Function"]

    def resolve(self, value: Any) -> Any:
        """Evaluate the intrinsic functions this template uses: Ref, GetAtt, If, Sub, Select, Split, Join."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {key: self.resolve(item) for key, item in value.items()}
        ((function, argument),) = value.items()
        if function == "Ref":
            return self._ref(argument)
        if function == "Fn::GetAtt":
            logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return self._get_att(logical_id, attribute)
        if function == "Fn::If":
            condition, if_true, if_false = argument
            return self.resolve(if_true if self._condition(condition) else if_false)
        if function == "Fn::Sub":
            return self._sub(argument)
        resolved = self.resolve(argument)
        if function == "Fn::Select" and isinstance(resolved[1], list):
            return resolved[1][int(resolved[0])]
        if function == "Fn::Split" and isinstance(resolved[1], str):
            return resolved[1].split(resolved[0])
        if function == "Fn::Join" and all(isinstance(item, str) for item in resolved[1]):
            return resolved[0].join(resolved[1])
        return {function: resolved}  # what it stands for is known only once deployed

    def _ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical_ids:
            return self.physical_ids[name]
        if name == "AWS::Region":
            return self.region
        if name == "AWS::Partition":
            return "aws"
        if name == "AWS::AccountId":
            return LOCAL_ACCOUNT
        if name == "AWS::StackName":
            return self.name
        if name == "AWS::NoValue":
            return NO_VALUE
        raise KeyError(f"Ref {name!r}: no such parameter or created resource")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn" and logical_id in self.arns:
            return self.arns[logical_id]
        if attribute == "StreamArn" and logical_id in self.stream_arns:
            return self.stream_arns[logical_id]
        raise KeyError(f"GetAtt {logical_id}.{attribute}: not created here")

    def _as_deployed(self, template: dict) -> dict:
        """The template without the resources and outputs whose Condition is false, their Fn::If decided."""
        kept = dict(template)
        for section in ("Resources", "Outputs"):
            entries = template.get(section, {}).items()
            kept[section] = {
                key: self._decided(spec) for key, spec in entries if self._condition(spec.get("Condition"))
            }
        return kept

    def _decided(self, value: Any) -> Any:
        """``value`` with each Fn::If replaced by the branch its condition picks (a property or item whose
        branch is AWS::NoValue left out), as SAM CLI's providers need it, and each reference to a function's
        alias by the function: the local stack serves functions by logical id, and has no versions."""
        if isinstance(value, list):
            return [decided for item in value if (decided := self._decided(item)) != _NO_VALUE_REF]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Fn::If"}:
            condition, if_true, if_false = value["Fn::If"]
            return self._decided(if_true if self._condition(condition) else if_false)
        reference = value.get("Ref") if set(value) == {"Ref"} else None
        if isinstance(reference, str) and reference.endswith(_SAM_ALIAS):
            return {"Fn::GetAtt": [reference.removesuffix(_SAM_ALIAS), "Arn"]}
        return {key: decided for key, item in value.items() if (decided := self._decided(item)) != _NO_VALUE_REF}

    def _condition(self, name: str | None) -> bool:
        """A named condition's value; no condition (None) is true."""
        if name is None:
            return True
        conditions = self.template.get("Conditions", {})
        if name not in conditions:
            raise UnsupportedCondition(f"condition {name!r} is not in the template's Conditions")
        return self._truth(name, conditions[name])

    def _truth(self, name: str, condition: object) -> bool:
        function, argument = next(iter(condition.items())) if isinstance(condition, dict) and condition else ("", None)
        if function == "Fn::Equals":
            left, right = self.resolve(argument)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self._truth(name, argument[0])
        if function == "Fn::And":
            return all(self._truth(name, part) for part in argument)
        if function == "Fn::Or":
            return any(self._truth(name, part) for part in argument)
        if function == "Condition":
            return self._condition(argument)
        raise UnsupportedCondition(
            f"condition {name!r}: {function or condition!r} cannot be evaluated by the local stack, which knows "
            f"{', '.join(CONDITION_FUNCTIONS)}; it will not guess which resources exist"
        )

    def _sub(self, argument: str | list) -> str:
        """Fn::Sub, as a string or as [string, {name: value}]."""
        text, variables = (argument, {}) if isinstance(argument, str) else argument

        def replace(match: re.Match) -> str:
            name = match[1]
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                return str(self._get_att(*name.split(".", 1)))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    # --- resources ---

    def tables(self) -> list[str]:
        return [key for key, spec in self.template["Resources"].items() if spec["Type"] == "AWS::DynamoDB::Table"]

    def create_tables(self, dynamodb) -> None:
        """Create every DynamoDB table of the template (the keys and the audit tables)."""
        for logical_id in self.tables():
            self.create_table(dynamodb, logical_id)

    def create_table(self, dynamodb, logical_id: str) -> str:
        """Create a table as the template defines it; returns the table name. Point-in-time recovery is left
        out only where the endpoint has no such operation (DynamoDB Local)."""
        properties = self.resolve(self.resource(logical_id)["Properties"])
        unknown = set(properties) - _TABLE_PROPERTIES
        if unknown:
            raise KeyError(f"{logical_id} properties this stack cannot create: {sorted(unknown)}")
        name = f"{self.name}-{logical_id}-{secrets.token_hex(4)}"
        indexes = (
            {"GlobalSecondaryIndexes": properties["GlobalSecondaryIndexes"]}
            if "GlobalSecondaryIndexes" in properties
            else {}
        )
        if "StreamSpecification" in properties:
            view = properties["StreamSpecification"]["StreamViewType"]
            indexes["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
        table = dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=properties["AttributeDefinitions"],
            KeySchema=properties["KeySchema"],
            BillingMode=properties["BillingMode"],
            SSESpecification={"Enabled": properties["SSESpecification"]["SSEEnabled"]},
            DeletionProtectionEnabled=bool(properties.get("DeletionProtectionEnabled", False)),
            **indexes,
        )["TableDescription"]
        self.physical_ids[logical_id] = name  # from here on, whoever cleans up must delete it
        self.arns[logical_id] = table["TableArn"]
        if "LatestStreamArn" in table:
            self.stream_arns[logical_id] = table["LatestStreamArn"]
        wait_for_table(dynamodb, name)
        if ttl := properties.get("TimeToLiveSpecification"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]},
            )
        recovery = properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
        try:
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": recovery}
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != NO_SUCH_OPERATION:
                raise
            # DynamoDB Local has no backups at all (no ContinuousBackups operation): nothing to turn on there.
        return name

    def create_pepper_secret(self, secretsmanager) -> str:
        """Create the PepperSecret, generating its value as GenerateSecretString does; returns its ARN."""
        properties = self.resource("PepperSecret")["Properties"]
        generate = properties["GenerateSecretString"]
        alphabet = string.ascii_letters + string.digits
        if not generate.get("ExcludePunctuation"):
            alphabet += string.punctuation
        value = json.loads(generate["SecretStringTemplate"])
        value[generate["GenerateStringKey"]] = "".join(
            secrets.choice(alphabet) for _ in range(generate["PasswordLength"])
        )
        arn = secretsmanager.create_secret(
            Name=f"{self.name}-PepperSecret-{secrets.token_hex(4)}",
            Description=properties.get("Description", ""),
            SecretString=json.dumps(value),
        )["ARN"]
        self.physical_ids["PepperSecret"] = arn
        self.arns["PepperSecret"] = arn
        return arn

    def log_groups(self) -> list[str]:
        return [key for key, spec in self.template["Resources"].items() if spec["Type"] == "AWS::Logs::LogGroup"]

    def create_log_groups(self, logs) -> None:
        """Create each log group the functions read or write (their own logs go to the local stack's output)."""
        for logical_id in self.log_groups():
            name = f"{self.name}-{logical_id}-{secrets.token_hex(4)}"
            logs.create_log_group(logGroupName=name)
            self.physical_ids[logical_id] = name
            self.arns[logical_id] = f"arn:aws:logs:{self._ref('AWS::Region')}:{LOCAL_ACCOUNT}:log-group:{name}:*"

    def topics(self) -> list[str]:
        return [key for key, spec in self.template["Resources"].items() if spec["Type"] == "AWS::SNS::Topic"]

    def create_topics(self, sns) -> None:
        """Create each SNS topic (its subscriptions are left out: nobody reads mail here)."""
        for logical_id in self.topics():
            arn = sns.create_topic(Name=f"{self.name}-{logical_id}-{secrets.token_hex(4)}")["TopicArn"]
            self.physical_ids[logical_id] = self.arns[logical_id] = arn

    def create_usage_plans(self, apigateway, apis: dict[str, tuple[str, str]]) -> dict[str, str]:
        """Create each AWS::ApiGateway::UsagePlan of the template, on the APIs as served here (logical id ->
        (API id, stage)); returns logical id -> plan id."""
        for logical_id, (api_id, stage) in apis.items():
            self.physical_ids[logical_id], self.physical_ids[f"{logical_id}.Stage"] = api_id, stage
        plans = {}
        for logical_id, spec in self.template["Resources"].items():
            if spec["Type"] != "AWS::ApiGateway::UsagePlan":
                continue
            properties = self.resolve(spec["Properties"])
            quota = properties.get("Quota")
            plan = apigateway.create_usage_plan(
                name=f"{self.name}-{logical_id}",
                description=properties.get("Description", ""),
                apiStages=[{"apiId": s["ApiId"], "stage": s["Stage"]} for s in properties.get("ApiStages", [])],
                **({"quota": {"limit": int(quota["Limit"]), "period": quota["Period"]}} if quota else {}),
            )
            plans[logical_id] = self.physical_ids[logical_id] = plan["id"]
        return plans

    # --- functions ---

    def _function_property(self, logical_id: str, name: str) -> Any:
        own = self.resource(logical_id)["Properties"]
        return own.get(name, self.template.get("Globals", {}).get("Function", {}).get(name))

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """Globals' and the function's own environment variables, resolved, as strings."""
        variables = dict(
            self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        )
        variables.update(self.resource(logical_id)["Properties"].get("Environment", {}).get("Variables", {}))
        return {key: str(self.resolve(value)) for key, value in variables.items()}

    def handler_path(self, logical_id: str) -> tuple[Path, str, str]:
        """(code directory, module, attribute) of a function's handler."""
        code_dir = (ROOT / self._function_property(logical_id, "CodeUri")).resolve()
        module, _, attribute = self._function_property(logical_id, "Handler").rpartition(".")
        return code_dir, module, attribute


def _check_parameter(name: str, spec: dict, value: Any) -> None:
    """Refuse, as CloudFormation does, a value outside the parameter's AllowedValues, AllowedPattern or range."""
    text = str(value)
    if "AllowedValues" in spec and text not in [str(allowed) for allowed in spec["AllowedValues"]]:
        raise InvalidParameter(f"parameter {name}: {text[:64]!r} is not one of {spec['AllowedValues']}")
    if "AllowedPattern" in spec and re.fullmatch(spec["AllowedPattern"], text, re.ASCII) is None:  # Java's \s, \w
        raise InvalidParameter(f"parameter {name}: {text[:64]!r} does not match its AllowedPattern")
    if spec.get("Type") == "Number":
        try:
            number = float(text)
        except ValueError:
            raise InvalidParameter(f"parameter {name}: {text[:64]!r} is not a number") from None
        if not spec.get("MinValue", number) <= number <= spec.get("MaxValue", number):
            bounds = f"{spec.get('MinValue', '')}..{spec.get('MaxValue', '')}"
            raise InvalidParameter(f"parameter {name}: {text} is outside {bounds}")


def wait_for_table(dynamodb, name: str) -> None:
    """Until the table is ACTIVE: a minute at most, enough for a real table with an index."""
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})


def import_handler(stack: Stack, logical_id: str) -> Callable:
    """Import a function's handler afresh, as a new Lambda container would, under the current
    os.environ (set it from ``stack.function_environment`` first)."""
    code_dir, module_name, attribute = stack.handler_path(logical_id)
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    for name in list(sys.modules):
        if name.split(".")[0] in HANDLER_PACKAGES:
            del sys.modules[name]
    return getattr(importlib.import_module(module_name), attribute)
