"""Boot time and per-request cost of the generated runtime.

1. Build time (load + validate, models, schema, views, permissions) for the core
   pack and synthetic packs of 20, 100 and 300 entities x 30 fields, on a new
   SQLite database each, with the growth ratio per entity against the 20-entity pack.
2. Latency of a list page and a REST create for a generated entity against a
   hand-written SQLAlchemy model with a Flask-AppBuilder ModelView and
   ModelRestApi of the same shape, in the same process and app, as a ratio.

Run: .venv/bin/python bench/boot.py [--requests N]
Not a timed test: it prints figures, it asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

TYPES = ["string", "integer", "money", "date", "boolean", "decimal", "text", "rate", "datetime", "enum"]


def synthetic_pack(root: Path, entities: int, fields: int = 30) -> Path:
    pack = root / f"synthetic_{entities}"
    (pack / "entities").mkdir(parents=True)
    (pack / "pack.yaml").write_text(f'name: synthetic{entities}\nversion: "1"\nlabel: {{zh: 合成, en: Synthetic}}\nrequires: []\n',
                                    encoding="utf-8")
    (pack / "roles.yaml").write_text("roles:\n  - {name: clerk, label: {zh: 职员, en: Clerk}}\n"
                                     "menus:\n  - {key: data, label: {zh: 数据, en: Data}}\n", encoding="utf-8")
    for e in range(entities):
        lines = [f"entity: ent{e:03d}", f"label: {{zh: 实体{e}, en: Entity {e}}}", "title: f00", "menu: data", "fields:"]
        for i in range(fields):
            t = TYPES[i % len(TYPES)]
            extra = ""
            if t == "enum":
                extra = ", options: [{value: a, label: {zh: 甲, en: A}}, {value: b, label: {zh: 乙, en: B}}]"
            if t == "string":
                extra = ", max_length: 100"
            lines.append(f"  - {{name: f{i:02d}, type: {t}, label: {{zh: 字段{i}, en: Field {i}}}{extra}}}")
        if e > 0:
            lines.append(f"  - {{name: ref, type: reference, target: ent{e - 1:03d}, label: {{zh: 引用, en: Ref}}}}")
        lines += ["list:", "  columns: [f00, f01, f02, f03]", "  search: [f00]",
                  "permissions: {read: [clerk], write: [clerk], delete: [clerk]}"]
        (pack / "entities" / f"ent{e:03d}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return pack


def build_once(packs, workdir: Path) -> dict:
    """Time one build on a new database, then a restart on the same database."""
    from danbao.app import create_app
    from danbao.config import Settings
    from danbao.meta.loader import load_packs
    from danbao.model.builder import build_models
    t0 = time.perf_counter()
    meta = load_packs(packs)
    t1 = time.perf_counter()
    settings = Settings(instance_dir=workdir, database_url=f"sqlite:///{workdir / 'b.db'}", packs=tuple(packs),
                        secret_key="bench")
    create_app(settings, meta=meta)          # models + schema + FAB + views + permissions
    t2 = time.perf_counter()
    create_app(settings, meta=load_packs(packs))   # a restart: load again, schema already there
    t3 = time.perf_counter()
    t4 = time.perf_counter()
    build_models(meta)                       # informational: the model-building share
    t5 = time.perf_counter()
    return {"load": t1 - t0, "models": t5 - t4, "app": t2 - t1, "total": t2 - t0, "restart": t3 - t2}


def load_vs_parse(core: Path, repeat: int = 5) -> None:
    """The loader's checks after parsing must stay linear: its time against
    parsing the same YAML, in the same process (best of ``repeat``)."""
    from danbao.meta import yamlio
    from danbao.meta.loader import load_packs
    load_packs([core])                       # warm: schemas compiled once per process
    files = [p.read_bytes() for p in sorted(core.rglob("*.yaml"))]
    parse = load = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for data in files:
            yamlio.parse(data, "bench.yaml")
        parse = min(parse, time.perf_counter() - t)
        t = time.perf_counter()
        load_packs([core])
        load = min(load, time.perf_counter() - t)
    print(f"\n== Core pack: {len(files)} YAML files ==")
    print(f"parse {parse * 1000:.0f} ms   load+validate {load * 1000:.0f} ms   ratio {load / parse:.2f}x")


def boot_table(tmp: Path) -> None:
    core = REPO / "metadata" / "core"
    load_vs_parse(core)
    from danbao.meta.loader import load_packs
    rows = [("core", len(load_packs([core]).entities), build_once([core], tmp / "core"))]
    for n in (20, 100, 300):
        pack = synthetic_pack(tmp / "packs", n)
        rows.append((f"{n}x30", n, build_once([pack], tmp / f"s{n}")))
    base = next(r for r in rows if r[1] == 20)
    print("\n== Build time, seconds (new SQLite database; 'app' = models+schema+FAB+views+permissions) ==")
    print(f"{'pack':>8} {'entities':>8} {'load':>7} {'app':>7} {'total':>7} {'(models)':>9} {'restart':>8} "
          f"{'per-entity vs 20':>17}")
    for name, n, r in rows:
        ratio = (r["total"] / n) / (base[2]["total"] / base[1])
        print(f"{name:>8} {n:>8} {r['load']:>7.3f} {r['app']:>7.3f} {r['total']:>7.3f} {r['models']:>9.3f} "
              f"{r['restart']:>8.3f} {ratio:>16.2f}x")


def request_ratio(tmp: Path, requests: int) -> None:
    import sqlalchemy as sa
    from flask_appbuilder import Model, ModelRestApi, ModelView
    from flask_appbuilder.models.sqla.interface import SQLAInterface
    from webfixtures import PASSWORD, add_user, make_app

    class HandCustomer(Model):
        __tablename__ = "hand_customer"
        id = sa.Column(sa.Integer, primary_key=True)
        name = sa.Column(sa.String(200), nullable=False)
        uscc = sa.Column(sa.String(18), unique=True)
        industry = sa.Column(sa.String(64))
        enterprise_size = sa.Column(sa.String(64))
        registered_capital = sa.Column(sa.Numeric(18, 2))
        established_on = sa.Column(sa.Date)

    class HandView(ModelView):
        datamodel = SQLAInterface(HandCustomer)
        list_columns = ["name", "uscc", "industry", "enterprise_size", "registered_capital", "established_on"]
        search_columns = ["name", "uscc"]
        page_size = 20

    class HandApi(ModelRestApi):
        resource_name = "hand_customer"
        datamodel = SQLAInterface(HandCustomer)

    app = make_app(f"sqlite:///{tmp / 'req.db'}", tmp / "req")
    with app.app_context():
        Model.metadata.create_all(app.extensions["danbao"].db.engine, tables=[HandCustomer.__table__])
        app.appbuilder.add_view(HandView, "Hand", category="Hand")
        app.appbuilder.add_api(HandApi)
    add_user(app, "pm", "Admin")
    client = app.test_client()
    client.post("/login/", data={"username": "pm", "password": PASSWORD})
    token = client.post("/api/v1/security/login", json={"username": "pm", "password": PASSWORD, "provider": "db"}).get_json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    import random
    from danbao.demo import make_uscc
    rng = random.Random(1)
    for i in range(60):   # same data in both tables
        body = {"name": f"企业{i}", "uscc": make_uscc(rng, "320100"), "industry": "C", "enterprise_size": "small",
                "registered_capital": "100.00", "established_on": "2020-01-01"}
        assert client.post("/api/v1/corporate_customer/", json=body, headers=h).status_code == 201
        assert client.post("/api/v1/hand_customer/", json=dict(body, registered_capital=100.0), headers=h).status_code == 201

    def timed(fn, n):
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return statistics.median(samples)

    def gen_list():
        assert client.get("/e/corporate_customer/").status_code == 200

    def hand_list():
        assert client.get("/handview/list/").status_code == 200

    counter = iter(range(10**6))

    def gen_create():
        i = next(counter)
        r = client.post("/api/v1/corporate_customer/", json={"name": f"新企业{i}", "uscc": make_uscc(rng, "320100"),
                                                              "registered_capital": "5.00"}, headers=h)
        assert r.status_code == 201, r.data

    def hand_create():
        i = next(counter)
        r = client.post("/api/v1/hand_customer/", json={"name": f"新企业{i}", "uscc": make_uscc(rng, "320100"),
                                                         "registered_capital": 5.0}, headers=h)
        assert r.status_code == 201, r.data

    for fn in (gen_list, hand_list, gen_create, hand_create):   # warm up
        fn()
    gl, hl = timed(gen_list, requests), timed(hand_list, requests)
    gc, hc = timed(gen_create, requests), timed(hand_create, requests)
    print(f"\n== Per request, median of {requests} (generated vs hand-written FAB ModelView/ModelRestApi) ==")
    print(f"list page : generated {gl * 1000:7.2f} ms   hand-written {hl * 1000:7.2f} ms   ratio {gl / hl:.2f}x")
    print(f"REST create: generated {gc * 1000:7.2f} ms   hand-written {hc * 1000:7.2f} ms   ratio {gc / hc:.2f}x")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        boot_table(Path(tmp))
        request_ratio(Path(tmp), args.requests)


if __name__ == "__main__":
    main()
