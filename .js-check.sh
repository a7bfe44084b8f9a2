set -e
python3 -m venv /tmp/v
/tmp/v/bin/pip install -q -U pip 2>&1 | grep -v WARNING || true
/tmp/v/bin/pip install -q "jsonschema>=4.17" 2>&1 | grep -v WARNING || true
cd /src
/tmp/v/bin/python -c "
import json, sys, jsonschema
s = json.load(open('unban/schema/unban.schema.json'))
jsonschema.Draft202012Validator.check_schema(s)
v = jsonschema.Draft202012Validator(s)
doc = {'schema_version': 1, 'command': 'me', 'exit_code': 2, 'dry_run': False, 'changed': False, 'error': {'message': 'x', 'kind': 'InputError', 'exit_code': 2}}
v.validate(doc)
print('jsonschema', jsonschema.__version__ if hasattr(jsonschema, '__version__') else '?', 'on', sys.version.split()[0], 'ok')
"
